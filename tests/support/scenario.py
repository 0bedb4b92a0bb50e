"""An invented family's records from all four agency kinds, as signed submissions.

The Fenwick family: Dana Fenwick (mother), her partner Lee Marsh (who lives elsewhere), and her
children Mia (7, a pupil at Northshire Primary) and Theo (3), both at 14 Orchard Row. Nobody
here is real; NHS numbers come from the 999 test range.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts.examples import example_envelope, valid_nhs_number, valid_upn
from hub.crypto.runtime import sign_as_dev

__all__ = [
    "AGENCY_KINDS",
    "MIA_NHS",
    "MIA_UPN",
    "THEO_NHS",
    "envelope",
    "mia",
    "theo",
]

AGENCY_KINDS = {
    "northshire-cs": "childrens_services",
    "northshire-police": "police",
    "northshire-health": "health",
    "northshire-primary": "schools",
}
_LAWFUL_BASIS = {"northshire-police": "law_enforcement_sch8"}
MIA_NHS = valid_nhs_number(5601)
THEO_NHS = valid_nhs_number(5602)
MIA_UPN = valid_upn(5601)
_HOME = {"lines": ["14 Orchard Row", "Northtown"], "postcode": "NS2 7QP"}
_ADULTS = [
    {"relationship": "mother", "name": {"given": "Dana", "family": "Fenwick", "aliases": []},
     "identifiers": [], "birth_date": "1992-08-19"},
    {"relationship": "other", "name": {"given": "Lee", "family": "Marsh", "aliases": []},
     "identifiers": [], "birth_date": "1989-01-30"},
]  # fmt: skip


def mia(*, with_upn: bool = False) -> dict[str, Any]:
    """Mia Fenwick, 7, at home with her mother and brother (with her UPN when a school sends)."""
    ids = [{"system": "nhs", "value": MIA_NHS}]
    if with_upn:
        ids.append({"system": "upn", "value": MIA_UPN})
    return _person(ids, "Mia", "2019-03-11", "female")


def theo() -> dict[str, Any]:
    """Theo Fenwick, 3, Mia's brother, not at school yet."""
    return _person([{"system": "nhs", "value": THEO_NHS}], "Theo", "2023-06-02", "male")


def _person(ids: list[dict[str, str]], given: str, born: str, sex: str) -> dict[str, Any]:
    return {
        "identifiers": ids,
        "name": {"given": given, "family": "Fenwick", "aliases": []},
        "birth_date": born,
        "sex": sex,
        "address": _HOME,
        "related": _ADULTS,
    }


def envelope(
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    occurred: datetime,
    person: dict[str, Any],
    recorded_after: timedelta = timedelta(minutes=20),
    sensitivity: tuple[str, ...] = (),
    supersedes: str | None = None,
) -> dict[str, Any]:
    """A signed envelope from the agency its id names (``agency:local-id``)."""
    agency = event_id.split(":", 1)[0]
    doc = example_envelope(
        id=event_id,
        source=f"urn:agency:{agency}",
        type=event_type,
        agency_id=agency,
        agency_kind=AGENCY_KINDS[agency],
        subject=f"FENWICK-{agency}",
        time=occurred.isoformat(),
        recorded_at=(occurred + recorded_after).isoformat(),
        lawful_basis=_LAWFUL_BASIS.get(agency, "public_task"),
        sensitivity=list(sensitivity),
        supersedes=supersedes,
        person=person,
        data=data,
    )
    return sign_as_dev(doc)  # type: ignore[no-any-return]
