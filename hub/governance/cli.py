"""Commands ``hub rules ...`` and ``hub audit ...`` against the store in ``hub.settings``.

Every command migrates the store first. Output is JSON (or one problem per line for
``validate``) on stdout; logs, ids only, go to stderr. Exit codes: 0 done, 1 problems found
(invalid pack, broken trail), 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hub.governance import Governance
from hub.governance.audit import Actor
from hub.governance.audit_store import AuditQuery
from hub.governance.config import load_governance_settings
from hub.governance.disclosures import replay_dry_run
from hub.governance.rules_store import PackVersionUsed
from hub.observability import configure_logging
from hub.registry import AgencyRegistry
from hub.settings import Settings, load_settings
from hub.sharing import RulePackInvalid, RuleProblem, diff_packs

__all__ = ["audit_app", "rules_app"]

_T = TypeVar("_T")

rules_app = typer.Typer(
    help="Sharing rules: validate, diff, dry-run and apply rule packs; see the history.",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="The audit trail: verify its hash chain, search it.", no_args_is_help=True
)

retention_app = typer.Typer(
    help="Retention: erase (crypto-shred) children whose retention period has ended.",
    no_args_is_help=True,
)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _agencies(settings: Settings) -> dict[str, Any]:
    return {a.id: a.kind for a in AgencyRegistry.load(settings.agencies_file).all()}


def _with_governance(work: Callable[[Governance], Awaitable[_T]]) -> _T:
    from hub.store.db import create_engine, migrate

    settings = _settings()

    async def go() -> _T:
        engine = create_engine(settings.db_url)
        try:
            await migrate(engine)
            gov = Governance.over(
                engine,
                load_governance_settings(),
                keys_dir=settings.data_dir / "keys",
                agencies=_agencies(settings),
            )
            return await work(gov)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _show_problems(problems: list[RuleProblem]) -> None:
    for problem in problems:
        typer.echo(str(problem))
    typer.echo(f"{len(problems)} problem(s)", err=True)


@rules_app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="Rule pack, YAML or JSON.")]) -> None:
    """List every problem in a rule pack with its place; exit 1 if there is any."""
    from hub.sharing import validate_pack

    settings = _settings()
    problems = validate_pack(_read(file), file.name, agencies=_agencies(settings))
    if problems:
        _show_problems(problems)
        raise typer.Exit(1)
    typer.echo(f"{file.name}: valid")


@rules_app.command("diff")
def diff(
    first: Annotated[Path, typer.Argument(help="OLD pack, or NEW when it is the only one.")],
    second: Annotated[Path | None, typer.Argument(help="NEW pack.")] = None,
) -> None:
    """Rules added, removed and changed from OLD (default: the pack in force) to NEW."""
    old_file, new_file = (None, first) if second is None else (first, second)
    new_text = _read(new_file)
    old_text = None if old_file is None else _read(old_file)

    async def work(gov: Governance) -> dict[str, Any]:
        new = gov.rules.load(new_text, new_file.name)
        if old_file is None or old_text is None:
            old = (await gov.rules.current()).pack
        else:
            old = gov.rules.load(old_text, old_file.name)
        return diff_packs(old, new).as_dict()

    try:
        _print(_with_governance(work))
    except RulePackInvalid as exc:
        _show_problems(exc.problems)
        raise typer.Exit(1) from exc


@rules_app.command("dry-run")
def dry_run_command(
    file: Annotated[Path, typer.Argument(help="Proposed rule pack.")],
    days: Annotated[int, typer.Option(min=1, help="Replay this many days of disclosures.")] = 30,
) -> None:
    """Per recipient, which of the last DAYS days' disclosures FILE would add or remove."""
    text = _read(file)

    async def work(gov: Governance) -> dict[str, Any]:
        proposed = gov.rules.load(text, file.name)
        current = await gov.rules.current()
        result = await replay_dry_run(
            gov.trail, current.pack, proposed, days=days, now=datetime.now(UTC)
        )
        return result.as_dict()

    try:
        _print(_with_governance(work))
    except RulePackInvalid as exc:
        _show_problems(exc.problems)
        raise typer.Exit(1) from exc


@rules_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="Rule pack to put in force.")],
    author: Annotated[str, typer.Option(help="Who applies it (recorded and audited).")],
    reason: Annotated[str, typer.Option(help="Why (recorded and audited).")],
) -> None:
    """Validate FILE and make it the pack in force, as a new stored version."""
    text = _read(file)

    async def work(gov: Governance) -> dict[str, Any]:
        stored = await gov.rules.apply(text, file.name, actor=Actor(sub=author), reason=reason)
        return stored.as_dict(with_text=False)

    try:
        _print(_with_governance(work))
    except RulePackInvalid as exc:
        _show_problems(exc.problems)
        raise typer.Exit(1) from exc
    except (PackVersionUsed, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@rules_app.command("history")
def history() -> None:
    """Every rule pack applied, newest first."""

    async def work(gov: Governance) -> list[dict[str, Any]]:
        return [p.as_dict(with_text=False) for p in await gov.rules.history()]

    _print(_with_governance(work))


@audit_app.command("verify")
def verify() -> None:
    """Check the whole hash chain and its checkpoints; exit 1 and say where if broken."""

    async def work(gov: Governance) -> dict[str, Any]:
        return (await gov.trail.verify()).as_dict()

    report = _with_governance(work)
    _print(report)
    if not report["ok"]:
        raise typer.Exit(1)


@audit_app.command("search")
def search(
    child: Annotated[str | None, typer.Option(help="Child id.")] = None,
    who: Annotated[str | None, typer.Option(help="Subject (sub) of the actor.")] = None,
    agency: Annotated[str | None, typer.Option(help="Agency id of the actor.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, e.g. narrative.read.")] = None,
    since: Annotated[datetime | None, typer.Option(help="From (inclusive), ISO 8601.")] = None,
    until: Annotated[datetime | None, typer.Option(help="To (exclusive), ISO 8601.")] = None,
    before_seq: Annotated[int | None, typer.Option(help="Page: records before this seq.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Records per page.")] = 50,
) -> None:
    """Audit records, newest first (times without a zone are UTC)."""

    def aware(value: datetime | None) -> datetime | None:
        return None if value is None or value.tzinfo else value.replace(tzinfo=UTC)

    query = AuditQuery(child, who, agency, action, aware(since), aware(until), before_seq, limit)

    async def work(gov: Governance) -> dict[str, Any]:
        page = await gov.trail.search(query)
        return {
            "records": [r.as_dict() for r in page.records],
            "next_before_seq": page.next_before_seq,
        }

    _print(_with_governance(work))


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List who would be erased; change nothing.")
    ] = False,
    all_children: Annotated[
        bool, typer.Option("--all", help="With --dry-run: every child's verdict.")
    ] = False,
) -> None:
    """Erase every child whose retention period has ended; each erasure is audited."""
    from hub.crypto.data_keys import ChildKeyStore
    from hub.crypto.keyring import LocalFileKeyProvider
    from hub.governance.retention import RetentionOutcome, Verdict, build_retention_runner
    from hub.store.db import create_engine, migrate

    settings = _settings()

    async def go() -> tuple[list[RetentionOutcome], list[str]]:
        engine = create_engine(settings.db_url)
        try:
            await migrate(engine)
            keys_dir = settings.data_dir / "keys"
            runner = build_retention_runner(
                engine, ChildKeyStore(engine, LocalFileKeyProvider(keys_dir)), keys_dir=keys_dir
            )
            if not dry_run:
                return await runner.run(), []
            leftovers = await runner.leftovers()
            if all_children:
                return await runner.assess_all(), leftovers
            return await runner.run(dry_run=True), leftovers
        finally:
            await engine.dispose()

    outcomes, leftovers = asyncio.run(go())
    typer.echo("child_id\tverdict\tcategory\tdue_on")
    for outcome in outcomes:
        typer.echo(outcome.as_line())
    for child_id in leftovers:  # matching data an earlier erasure left: the run sweeps it
        typer.echo(f"{child_id}\tleftover\t-\t-")
    if dry_run:
        due = sum(o.verdict is Verdict.due for o in outcomes)
        typer.echo(f"{due} would be erased; {len(leftovers)} with leftovers to sweep", err=True)
    else:
        typer.echo(f"{len(outcomes)} erased", err=True)
