"""The `hub` command line: serve, tokens, replay, dead letters, contracts and the local broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from contracts import AgencyKind
from hub.bootstrap import Hub, ProcessRole, build_hub
from hub.crypto.cli import keys_app
from hub.domain.roles import Role
from hub.governance.cli import audit_app, retention_app, rules_app
from hub.kafka.cli import kafka_app
from hub.observability import configure_logging
from hub.registry import Agency, AgencyRegistry
from hub.settings import Settings, load_settings
from hub.streams.wire import DeadLetterSource
from hub.synth.cli import synth_app

__all__ = ["app"]

_T = TypeVar("_T")

app = typer.Typer(
    help="Safeguarding Hub: multi-agency child-protection information hub.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka", help="Run the local single-node Kafka broker.")
app.add_typer(keys_app, name="keys")
contracts_app = typer.Typer(help="Wire contracts: JSON Schemas and the AsyncAPI document.")
dlq_app = typer.Typer(help="Dead letters: list them with reasons, redrive them through ingest.")
db_app = typer.Typer(help="The store's schema.")
app.add_typer(contracts_app, name="contracts")
app.add_typer(dlq_app, name="dlq")
app.add_typer(db_app, name="db")
app.add_typer(synth_app, name="synth", help="Generate a synthetic population as native files.")
app.add_typer(rules_app, name="rules", help="Sharing rules: validate, diff, dry-run, apply.")
app.add_typer(audit_app, name="audit", help="The audit trail: verify, search.")
app.add_typer(retention_app, name="retention", help="Retention: erase children past their period.")


def _settings(*, cache_loggers: bool = False) -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json, cache=cache_loggers)
    return settings


def _ensure_local_kafka(settings: Settings) -> None:
    """Start the local broker when no external cluster is configured (the embedded default)."""
    if settings.kafka_bootstrap:
        return
    from hub.kafka.local import LocalKafka

    LocalKafka(settings).start()


async def _with_hub(settings: Settings, work: Callable[[Hub], Awaitable[_T]]) -> _T:
    """Run CLI work against a started hub with no processors (producer and store only)."""
    hub = build_hub(settings, ProcessRole.api)
    await hub.start()
    try:
        return await work(hub)
    finally:
        await hub.stop()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    load_only: Annotated[
        bool,
        typer.Option(
            "--load-only",
            help="Only load the scenario into the hub already running at --url "
            "(same HUB_* settings: broker and database).",
        ),
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Base URL of the running hub, with --load-only.")
    ] = None,
) -> None:
    """Run the hub with the Northshire demo loaded: invented families, a year of events."""
    from hub.demo import run_demo
    from hub.demo.loader import DemoLoadError

    settings = _settings()
    try:
        run_demo(settings, host=host, port=port, load_only=load_only, url=url, echo=typer.echo)
    except DemoLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    role: Annotated[
        ProcessRole, typer.Option(help="Run every part, or one part.")
    ] = ProcessRole.all,
) -> None:
    """Run the hub: every processor and the API in one process, or one part of it."""
    import uvicorn

    from hub.api.app import server_config

    settings = _settings(cache_loggers=True)  # a process of its own: configured once
    _ensure_local_kafka(settings)
    server = uvicorn.Server(server_config(build_hub(settings, role), host, port))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: the lifespan failed (its error is logged)
        raise typer.Exit(3)


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Subject: the user or system id.")],
    agency: Annotated[str, typer.Option(help="Registered agency id.")],
    role: Annotated[Role, typer.Option(help="Role of the caller.")],
    team: Annotated[str | None, typer.Option(help="Team, if any.")] = None,
    ttl_minutes: Annotated[int, typer.Option(help="Lifetime in minutes.")] = 480,
) -> None:
    """Print a bearer token signed with the hub's local key (alone on the last line)."""
    settings = _settings()
    hub = build_hub(settings, ProcessRole.api)
    if hub.issuer is None:
        typer.echo(
            "tokens come from the external issuer (HUB_JWT_PUBLIC_KEY_FILE is set)", err=True
        )
        raise typer.Exit(2)
    if agency not in hub.registry:
        typer.echo(f"agency {agency!r} is not registered", err=True)
        raise typer.Exit(2)
    typer.echo(
        hub.issuer.issue(
            sub=sub, agency=agency, role=role, team=team, ttl=timedelta(minutes=ttl_minutes)
        )
    )


@app.command()
def adapter(
    kind: Annotated[AgencyKind, typer.Argument(help="Agency kind of the file.")],
    file: Annotated[Path, typer.Argument(help="Native file: FHIR JSON, CTF/CIN XML, CSV.")],
    agency: Annotated[
        str | None, typer.Option(help="Agency id; default: the one agency of that kind.")
    ] = None,
    content_type: Annotated[
        str | None, typer.Option(help="Media type; default: from the file name.")
    ] = None,
) -> None:
    """Run an agency's adapter on a native file and send the good records to ingest.

    Exit 0 when every record was sent, 1 when some were rejected (the rest were sent),
    2 when the file cannot be read at all (nothing sent).
    """
    from hub.crypto.agency_keys import AgencyKeysError
    from hub.crypto.runtime import agency_signer
    from hub.intake import UnreadableFile, content_type_for, parse_native, publish_envelopes

    settings = _settings()
    registry = AgencyRegistry.load(settings.agencies_file)
    chosen = _agency_of_kind(registry, kind, agency)
    try:  # the adapter runs on the agency's side: it signs with the agency's own key
        signer = agency_signer(settings, chosen.id, registry, now=datetime.now(UTC))
    except AgencyKeysError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        body = file.read_bytes()
        media = content_type or content_type_for(file)
        result = parse_native(chosen, body, media, now=datetime.now(UTC))
    except (OSError, UnreadableFile) as exc:
        typer.echo(f"error: {file.name}: {exc}", err=True)
        raise typer.Exit(2) from exc
    for problem in result.errors:
        typer.echo(
            f"{problem.severity}: {problem.record}: {problem.field}: {problem.reason}", err=True
        )
    _ensure_local_kafka(settings)

    async def send(hub: Hub) -> list[str]:
        return await publish_envelopes(
            hub.streams, hub.topics, chosen.kind, result.envelopes, signer=signer
        )

    sent = asyncio.run(_with_hub(settings, send))
    typer.echo(
        f"sent {len(sent)} event(s) from {file.name} as {chosen.id}; "
        f"{len(result.rejected)} record(s) rejected, {len(result.warnings)} warning(s)"
    )
    if result.rejected:
        raise typer.Exit(1)


def _agency_of_kind(registry: AgencyRegistry, kind: AgencyKind, agency: str | None) -> Agency:
    """The named agency (which must be of ``kind``), or the only agency of that kind."""
    if agency is not None:
        if agency not in registry:
            typer.echo(f"error: agency {agency!r} is not registered", err=True)
            raise typer.Exit(2)
        found = registry.get(agency)
        if found.kind is not kind:
            typer.echo(f"error: agency {agency!r} is a {found.kind.value} agency", err=True)
            raise typer.Exit(2)
        return found
    of_kind = [a for a in registry.all() if a.kind is kind]
    if len(of_kind) != 1:
        names = ", ".join(a.id for a in of_kind) or "none"
        typer.echo(f"error: choose --agency; {kind.value} agencies: {names}", err=True)
        raise typer.Exit(2)
    return of_kind[0]


@app.command()
def replay() -> None:
    """Rebuild every projection from hub.events (stop the narrative processors first)."""
    from hub.streams.replay import replay_narrative

    settings = _settings()
    _ensure_local_kafka(settings)
    report = asyncio.run(_with_hub(settings, replay_narrative))
    typer.echo(f"replayed {report.records} records; {report.stored} narrative entries stored")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations (also done at every start)."""
    from hub.store.db import migrate_sync

    settings = _settings()
    migrate_sync(settings.db_url)
    typer.echo("store schema is up to date")


@contracts_app.command("export")
def contracts_export(directory: Annotated[Path, typer.Argument(help="Output folder.")]) -> None:
    """Write a JSON Schema per event type (and the envelope's) to DIRECTORY."""
    from contracts import export_json_schemas

    written = export_json_schemas(directory)
    for path in written:
        typer.echo(str(path))


@contracts_app.command("asyncapi")
def contracts_asyncapi(
    output: Annotated[Path | None, typer.Option(help="File to write; default stdout.")] = None,
) -> None:
    """Print or write the AsyncAPI document of every topic."""
    settings = _settings()
    document = build_hub(settings, ProcessRole.all).asyncapi_json()
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")
        typer.echo(str(output))


def _source(source: DeadLetterSource) -> str:
    return f"{source.topic}[{source.partition}]@{source.offset}"


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show every dead letter with its reason (never its payload)."""
    from hub.streams.dead_letters import list_dead_letters

    settings = _settings()
    _ensure_local_kafka(settings)
    views = asyncio.run(_with_hub(settings, list_dead_letters))
    for v in views:
        row = {
            "dlq_id": v.letter.dlq_id,
            "failed_at": v.letter.failed_at.isoformat(),
            "reason": v.letter.reason.value,
            "detail": v.letter.detail,
            "fields": [e.loc for e in v.letter.errors],
            "event_id": v.letter.event_id,
            "source": _source(v.letter.source),
            "redriven": v.redriven,
        }
        if as_json:
            typer.echo(json.dumps(row))
        else:
            fields = f" fields={','.join(row['fields'])}" if row["fields"] else ""
            done = " (redriven)" if v.redriven else ""
            typer.echo(
                f"{row['dlq_id']} {row['failed_at']} {row['reason']}{done} "
                f"event={row['event_id']} from={row['source']}{fields}: {row['detail']}"
            )
    if not as_json:
        typer.echo(f"{len(views)} dead letter(s)")


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Dead letter id (repeatable).")
    ] = None,
    fixed: Annotated[Path | None, typer.Option(help="A corrected message to send instead.")] = None,
) -> None:
    """Send dead letters (all not yet redriven, or the given ids) back through ingest, once."""
    from hub.streams.dead_letters import RedriveError, redrive

    settings = _settings()
    _ensure_local_kafka(settings)
    fixed_bytes = fixed.read_bytes() if fixed else None

    async def work(hub: Hub) -> list[str]:
        return await redrive(hub, ids=ids or None, fixed=fixed_bytes)

    try:
        sent = asyncio.run(_with_hub(settings, work))
    except RedriveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"redriven {len(sent)} dead letter(s)" + (": " + " ".join(sent) if sent else ""))
