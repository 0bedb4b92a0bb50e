"""Checking a rule pack file: every problem with its place (file, line, rule, field path).

``validate_pack`` never stops at the first problem: each rule is checked on its own, then the
checks no schema can make (duplicate ids, dates out of order, unknown agencies, paths outside
an event view, conditions that can never hold). ``load_pack`` returns a pack only when there
is no problem at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import AgencyKind
from hub.sharing.obligations import covers, split_path
from hub.sharing.rules import (
    ConsentMode,
    Match,
    ObligationSpec,
    Recipients,
    Rule,
    RulePack,
    When,
    instant,
)

__all__ = [
    "VIEW_ROOTS",
    "RulePackInvalid",
    "RuleProblem",
    "load_pack",
    "read_pack",
    "validate_pack",
]

VIEW_ROOTS = frozenset({"summary", "data", "person", "subject", "consent_ref", "sensitivity"})
"""Top-level fields of an event view (narrative entry or envelope) a rule may remove or
generalise; ids, types, times and the sending agency always stay."""

Place = tuple[str | int, ...]

_PATTERNS = {
    "^[a-z0-9][a-z0-9-]{1,63}$": "a rule id is 2-64 lower-case letters, digits and hyphens",
    "^[a-z0-9-]{2,64}$": "an agency id is 2-64 lower-case letters, digits and hyphens",
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": "a version is letters, digits, dots, hyphens, underscores",
}
_PATH_HINT = "a field path is dotted names such as data.details or person.related.*.name"
_WHEN: TypeAdapter[Any] = TypeAdapter(When)
_ENUM_NAMES = {
    "roles": "role",
    "agency_kinds": "agency kind",
    "source_agency_kinds": "agency kind",
    "event_types": "event type",
    "child_status": "child status",
    "purpose": "purpose",
    "lawful_basis": "lawful basis",
    "significant_harm_basis": "lawful basis",
    "consent": "consent mode",
    "until_milestone": "milestone",
}


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem in a rule pack: where it is and what is wrong, in words IG staff can act on."""

    location: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RulePackInvalid(ValueError):
    """A rule pack with problems; ``problems`` lists every one with its place."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__(
            f"{len(problems)} problem(s) in rule pack: " + "; ".join(map(str, problems))
        )
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text, so the schema checks them and says where."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _marks(node: yaml.Node | None, place: Place, out: dict[Place, int], dup: list[Place]) -> None:
    """Line number (1-based) of every place in a composed YAML document; duplicate keys."""
    if node is None:
        return
    out.setdefault(place, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                dup.append((*place, key))
            seen.add(key)
            out[(*place, key)] = key_node.start_mark.line + 1
            _marks(value_node, (*place, key), out, dup)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, (*place, i), out, dup)


class _Report:
    """Collects problems with places rendered against the parsed data and its line marks."""

    def __init__(self, filename: str, data: Any, lines: dict[Place, int]) -> None:
        self.filename, self.data, self.lines = filename, data, lines
        self.problems: list[RuleProblem] = []

    def add(self, place: Place, message: str) -> None:
        line = next(
            (self.lines[place[:n]] for n in range(len(place), -1, -1) if place[:n] in self.lines),
            None,
        )
        where = self.filename if line is None else f"{self.filename}:{line}"
        text = ""
        for i, seg in enumerate(place):
            if isinstance(seg, int):
                text += f"[{seg}]"
                if place[:i] == ("rules",):
                    rule_id = _get(self.data, ("rules", seg, "id"))
                    text += f" ({rule_id})" if isinstance(rule_id, str) else ""
            elif "." in seg or "*" in seg:
                text += f"[{seg!r}]"
            else:
                text += f".{seg}" if text else seg
        self.problems.append(RuleProblem(f"{where} {text}".rstrip(), message, line))


def _get(data: Any, place: Place) -> Any:
    for seg in place:
        if (isinstance(data, dict) and seg in data) or (
            isinstance(data, list) and isinstance(seg, int) and 0 <= seg < len(data)
        ):
            data = data[seg]
        else:
            return None
    return data


def _data_place(data: Any, loc: Place) -> Place:
    """The part of a pydantic error location that names a place in the data."""
    kept: list[str | int] = []
    for seg in loc:
        if isinstance(data, dict):
            kept.append(seg)
            if seg not in data:
                break
            data = data[seg]
        elif isinstance(data, list) and isinstance(seg, int):
            kept.append(seg)
            data = data[seg] if 0 <= seg < len(data) else None
        else:
            break  # a union member or a key marker, not a place in the file
    return tuple(kept)


def _message(err: Mapping[str, Any], place: Place) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    field = next((s for s in reversed(place) if isinstance(s, str)), "")
    if kind == "extra_forbidden":
        return f"unknown key {field!r} (misspelt, or not allowed here)"
    if kind == "missing":
        return f"{field} is required"
    if kind == "too_short" and ctx.get("actual_length") == 0:
        return "an empty list matches nothing; leave the key out to match any"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(ctx.get("pattern", ""), _PATH_HINT)
    if kind == "enum":
        what = _ENUM_NAMES.get(field, field.replace("_", " ") or "value")
        if field.startswith("sensitivity_"):
            what = "sensitivity tag"
        return f"unknown {what} {err.get('input')!r}; expected {ctx.get('expected')}"
    return str(err["msg"]).removeprefix("Value error, ")


def _schema_problems(report: _Report, exc: ValidationError, prefix: Place) -> None:
    errors = exc.errors()
    places = [(*prefix, *_data_place(_get(report.data, prefix), tuple(e["loc"]))) for e in errors]
    merged: dict[Place, list[str]] = {}
    for err, place in zip(errors, places, strict=True):
        # A list or model also failing because one of its items failed says nothing new.
        if any(len(p) > len(place) and p[: len(place)] == place for p in places):
            continue
        messages = merged.setdefault(place, [])
        # Each member of a union (a date or a date-time) fails alike: say it once.
        if not messages or len(err["loc"]) + len(prefix) == len(place):
            message = _message(err, place)
            if message not in messages:
                messages.append(message)
    for place, messages in merged.items():
        report.add(place, "; ".join(messages))


def _part(model: type[BaseModel], value: Any) -> Any:
    """``value`` as ``model`` if it is valid on its own (its errors are reported elsewhere)."""
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _when(value: Any) -> datetime | None:
    try:
        return None if value is None else instant(_WHEN.validate_python(value))
    except ValidationError:
        return None


def _agency_problems(
    report: _Report,
    at: Place,
    field: str,
    kinds: tuple[AgencyKind, ...] | None,
    ids: tuple[str, ...] | None,
    agencies: Mapping[str, AgencyKind],
) -> None:
    key = "source_agencies" if field == "match" else "agencies"
    for i, agency in enumerate(ids or ()):
        if agency not in agencies:
            report.add((*at, field, key, i), f"agency {agency!r} is not in the agency registry")
        elif kinds is not None and agencies[agency] not in kinds:
            report.add(
                (*at, field, key, i),
                f"agency {agency!r} is a {agencies[agency]} agency, outside the agency kinds "
                "this rule names, so it can never match",
            )


def _match_problems(report: _Report, at: Place, m: Match) -> None:
    none, only = set(m.sensitivity_none or ()), m.sensitivity_only
    for name in ("sensitivity_any", "sensitivity_all"):
        tags = set(getattr(m, name) or ())
        if tags & none:
            report.add((*at, "match"), f"{name} and sensitivity_none share tags: never matches")
        if only is not None and tags:
            outside = not tags <= set(only) if name == "sensitivity_all" else not tags & set(only)
            if outside:
                report.add((*at, "match"), f"{name} asks for tags sensitivity_only excludes")


def _obligation_problems(report: _Report, at: Place, ob: ObligationSpec) -> None:
    removed = [split_path(p) for p in ob.remove_fields]
    roots = ", ".join(sorted(VIEW_ROOTS))
    for i, path in enumerate(ob.remove_fields):
        if split_path(path)[0] not in VIEW_ROOTS:
            report.add(
                (*at, "obligations", "remove_fields", i),
                f"{path!r} is not a field of an event view; paths start with {roots}",
            )
    for path in ob.generalise:
        place = (*at, "obligations", "generalise", path)
        if split_path(path)[0] not in VIEW_ROOTS:
            report.add(place, f"{path!r} is not a field of an event view; paths start with {roots}")
        elif any(covers(r, split_path(path)) for r in removed):
            report.add(place, f"{path!r} is also removed; a field is either removed or generalised")
        elif any(g != path and covers(split_path(g), split_path(path)) for g in ob.generalise):
            report.add(place, f"{path!r} lies inside another generalised field")


def _semantic_problems(
    report: _Report, index: int, raw: dict[str, Any], agencies: Mapping[str, AgencyKind] | None
) -> None:
    """Checks no schema can make, on every part of a rule that is valid on its own."""
    at: Place = ("rules", index)
    start, end = _when(raw.get("effective_from")), _when(raw.get("effective_to"))
    if start is not None and end is not None and end <= start:
        report.add((*at, "effective_to"), "effective_to must be after effective_from")
    match = _part(Match, raw.get("match", {}))
    recipients = _part(Recipients, raw.get("recipients"))
    obligations = _part(ObligationSpec, raw.get("obligations", {}))
    if agencies is not None and match is not None:
        _agency_problems(
            report, at, "match", match.source_agency_kinds, match.source_agencies, agencies
        )
    if agencies is not None and recipients is not None:
        _agency_problems(
            report, at, "recipients", recipients.agency_kinds, recipients.agencies, agencies
        )
    if match is not None:
        _match_problems(report, at, match)
    if obligations is not None:
        _obligation_problems(report, at, obligations)
    if raw.get("significant_harm_basis") is not None and raw.get("consent") != str(
        ConsentMode.required_unless_significant_harm
    ):
        report.add(
            (*at, "significant_harm_basis"),
            "only a rule with consent required_unless_significant_harm shares on significant harm",
        )


def _yaml_problem(exc: yaml.YAMLError, filename: str) -> RuleProblem:
    """The problem a YAML error names, at its line when it has one."""
    mark = getattr(exc, "problem_mark", None)
    line = None if mark is None else mark.line + 1
    where = filename if line is None else f"{filename}:{line}"
    problem = getattr(exc, "problem", None) or "cannot be read"
    return RuleProblem(where, f"not valid YAML: {problem}", line)


def _parse(
    text: str, filename: str
) -> tuple[Any, dict[Place, int], list[Place], RuleProblem | None]:
    lines: dict[Place, int] = {}
    duplicates: list[Place] = []
    try:
        node = yaml.compose(text, Loader=_Loader)
        _marks(node, (), lines, duplicates)
    except yaml.YAMLError as exc:
        node = None
        if not filename.endswith(".json"):
            return None, {}, [], _yaml_problem(exc, filename)
    try:
        data = json.loads(text) if filename.endswith(".json") else yaml.load(text, _Loader)
    except json.JSONDecodeError as exc:
        return (
            None,
            {},
            [],
            RuleProblem(f"{filename}:{exc.lineno}", f"not valid JSON: {exc.msg}", exc.lineno),
        )
    except yaml.YAMLError as exc:  # composes but does not construct (e.g. a lone "=")
        return None, {}, [], _yaml_problem(exc, filename)
    return data, lines, duplicates, None


def _check(
    text: str, filename: str, agencies: Mapping[str, AgencyKind] | None
) -> tuple[RulePack | None, list[RuleProblem]]:
    data, lines, duplicates, unreadable = _parse(text, filename)
    if unreadable is not None:
        return None, [unreadable]
    report = _Report(filename, data, lines)
    if not isinstance(data, dict):
        report.add((), "a rule pack is a mapping with version, author, reason and rules")
        return None, report.problems
    for place in duplicates:
        report.add(place, f"key {place[-1]!r} is given twice (the later one would win silently)")
    head = {**data, "rules": []} if isinstance(data.get("rules"), list) else data
    try:
        RulePack.model_validate(head)
    except ValidationError as exc:
        _schema_problems(report, exc, ())
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(rules):
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rule_id, str):
            if rule_id in first_index:
                report.add(
                    ("rules", i, "id"),
                    f"rule id {rule_id!r} is already used by rules[{first_index[rule_id]}]",
                )
            first_index.setdefault(rule_id, i)
        try:
            Rule.model_validate(raw)
        except ValidationError as exc:
            _schema_problems(report, exc, ("rules", i))
        if isinstance(raw, dict):
            _semantic_problems(report, i, raw, agencies)
    if report.problems:
        return None, sorted(report.problems, key=lambda p: p.line or 0)
    return RulePack.model_validate(data), []


def validate_pack(
    text: str, filename: str, *, agencies: Mapping[str, AgencyKind] | None = None
) -> list[RuleProblem]:
    """Every problem in a rule pack's text (YAML, or JSON for ``*.json``), each with its place.

    ``agencies`` (id -> kind, e.g. from the agency registry) also checks named agencies exist.
    An empty list means the pack is valid.
    """
    return _check(text, filename, agencies)[1]


def load_pack(
    text: str, filename: str, *, agencies: Mapping[str, AgencyKind] | None = None
) -> RulePack:
    """The rule pack in ``text``, or ``RulePackInvalid`` listing every problem."""
    pack, problems = _check(text, filename, agencies)
    if pack is None:
        raise RulePackInvalid(problems)
    return pack


def read_pack(path: Path, *, agencies: Mapping[str, AgencyKind] | None = None) -> RulePack:
    """Read and load a rule pack file (UTF-8); problems name the file by its name."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulePackInvalid([RuleProblem(str(path), f"cannot be read: {exc}")]) from exc
    return load_pack(text, Path(path).name, agencies=agencies)
