"""Shared base model and constrained scalar types for every wire contract."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["Code", "ContractModel", "LongText", "Name", "ShortText"]


class ContractModel(BaseModel):
    """Base for wire models: unknown fields rejected, immutable, strings stripped."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        allow_inf_nan=False,
    )


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
"""A personal name part, alias or practitioner name."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
"""A short label: a role, a team, a location, a reason code."""

LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
"""Free text written by a professional: a summary or a reason."""

Code = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/-]+$"
    ),
]
"""An opaque reference made of URL-safe characters (ids, key ids, consent references)."""
