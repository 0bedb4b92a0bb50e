"""Contract errors with field locations and messages that never carry the rejected value."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

__all__ = ["ContractError", "ContractValidationError", "FieldError"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with a submission: where (dotted path), what, and pydantic's error type."""

    loc: str
    msg: str
    type: str


class ContractError(Exception):
    """Base for every error raised by the contracts package."""


class ContractValidationError(ContractError):
    """A submission broke the contract; ``errors`` lists each problem, without input values."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return "submission breaks the contract"
        shown = "; ".join(f"{e.loc}: {e.msg}" for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        noun = "error" if len(self.errors) == 1 else "errors"
        return f"{len(self.errors)} contract {noun}: {shown}{more}"

    @classmethod
    def from_pydantic(cls, exc: ValidationError) -> ContractValidationError:
        """Convert a pydantic error, keeping locations and messages and dropping inputs."""
        errors = [
            FieldError(
                loc=".".join(str(part) for part in err["loc"]) or "body",
                msg=str(err["msg"]),
                type=str(err["type"]),
            )
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        return cls(errors)

    @classmethod
    def single(cls, loc: str, msg: str, type: str) -> ContractValidationError:
        """Build an error with one problem (for failures outside pydantic, e.g. bad JSON)."""
        return cls([FieldError(loc=loc, msg=msg, type=type)])
