"""Commands ``hub keys ...``: agency signing keys, KEK rotation, erasing a child."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.crypto.agency_keys import (
    DEV_KEYS_VALID_FROM,
    AgencyPublicKey,
    dev_key_id,
    dev_private_key,
    registry_yaml,
    write_private_key,
)
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.keyring import KeyProviderError, LocalFileKeyProvider
from hub.crypto.signing import sign_envelope
from hub.observability import configure_logging
from hub.registry import AgencyRegistry
from hub.settings import Settings, load_settings

__all__ = ["agency_key_path", "keys_app"]

_T = TypeVar("_T")

keys_app = typer.Typer(
    help="Keys: agency signing keys, key-encryption keys, erasing a child (audited).",
    no_args_is_help=True,
)


def _settings() -> Settings:
    """Settings, with logs (ids only) on stderr so stdout carries just the command's output."""
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def agency_key_path(settings: Settings, agency_id: str) -> Path:
    """Where ``agency-init`` keeps an agency's private signing key."""
    return settings.data_dir / "keys" / "agencies" / f"{agency_id}.pem"


def _with_store(settings: Settings, work: Callable[[ChildKeyStore], Awaitable[_T]]) -> _T:
    from hub.store.db import create_engine, migrate

    async def go() -> _T:
        engine = create_engine(settings.db_url)
        try:
            await migrate(engine)
            provider = LocalFileKeyProvider(settings.data_dir / "keys")
            return await work(ChildKeyStore(engine, provider))
        finally:
            await engine.dispose()

    return asyncio.run(go())


@keys_app.command("agency-init")
def agency_init(
    agency: Annotated[
        list[str] | None, typer.Option(help="Agency id (repeatable); default: every registered.")
    ] = None,
    random: Annotated[
        bool, typer.Option("--random", help="Fresh random keys instead of the dev keys.")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Also write the registry YAML here.")] = None,
) -> None:
    """Write agency private keys under HUB_DATA_DIR/keys/agencies; print the public registry.

    Without --random the keys are the deterministic development keys (anyone can derive
    them: for a developer's machine only).
    """
    settings = _settings()
    ids = agency or [a.id for a in AgencyRegistry.load(settings.agencies_file).all()]
    now = datetime.now(UTC).replace(microsecond=0)
    public: list[AgencyPublicKey] = []
    for agency_id in ids:
        path = agency_key_path(settings, agency_id)
        if random:
            if path.exists():
                typer.echo(f"keys: {path} exists; move it away to make a new key", err=True)
                raise typer.Exit(1)
            key, key_id = (
                Ed25519PrivateKey.generate(),
                f"{agency_id}.{now:%Y%m%d}-{secrets.token_hex(2)}",
            )
            valid_from = now
        else:
            key, key_id, valid_from = (
                dev_private_key(agency_id),
                dev_key_id(agency_id),
                DEV_KEYS_VALID_FROM,
            )
        write_private_key(path, key)
        public.append(AgencyPublicKey(key_id, agency_id, key.public_key(), valid_from))
        typer.echo(f"# {agency_id}: private key {path} (key id {key_id})", err=True)
    text = registry_yaml(public)
    if output is not None:
        output.write_text(text, "utf-8")
    typer.echo(text, nl=False)


@keys_app.command()
def sign(
    file: Annotated[
        Path, typer.Argument(help="An envelope (or a JSON list of them); - for stdin.")
    ],
    agency: Annotated[str, typer.Option(help="The signing agency (its key from agency-init).")],
    key_id: Annotated[str | None, typer.Option(help="Key id; default: the dev key id.")] = None,
) -> None:
    """Print the envelope(s) signed with the agency's private key."""
    settings = _settings()
    path = agency_key_path(settings, agency)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        typer.echo(f"keys: no private key for {agency} at {path}; run agency-init", err=True)
        raise typer.Exit(1) from exc
    if not isinstance(key, Ed25519PrivateKey):
        typer.echo(f"keys: {path} is not an Ed25519 key", err=True)
        raise typer.Exit(1)
    raw: Any = json.loads(sys.stdin.read() if str(file) == "-" else file.read_text("utf-8"))
    kid = key_id or dev_key_id(agency)
    signed = (
        [sign_envelope(e, key, kid) for e in raw]
        if isinstance(raw, list)
        else sign_envelope(raw, key, kid)
    )
    typer.echo(json.dumps(signed))


@keys_app.command("kek-list")
def kek_list() -> None:
    """List the key-encryption keys, the current one, and how many data keys each wraps."""
    settings = _settings()

    async def work(store: ChildKeyStore) -> list[str]:
        provider = LocalFileKeyProvider(settings.data_dir / "keys")
        current = await provider.current_kek_id()
        return [
            f"{k}{' (current)' if k == current else ''}: {await store.keys_under(k)} data keys"
            for k in provider.kek_ids()
        ]

    for line in _with_store(settings, work):
        typer.echo(line)


@keys_app.command("kek-rotate")
def kek_rotate() -> None:
    """Create a new KEK, make it current, and re-wrap every live data key under it."""
    settings = _settings()

    async def work(store: ChildKeyStore) -> tuple[str, int]:
        kek_id = await LocalFileKeyProvider(settings.data_dir / "keys").rotate()
        return kek_id, await store.rewrap_all(kek_id)

    kek_id, count = _with_store(settings, work)
    typer.echo(f"current KEK {kek_id}; {count} data keys re-wrapped")


@keys_app.command("kek-destroy")
def kek_destroy(
    kek_id: Annotated[str, typer.Argument(help="A retired KEK id, e.g. kek-0001.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Delete a retired KEK (refused while data keys are still wrapped under it)."""
    settings = _settings()
    if not yes:
        typer.echo("keys: pass --yes to destroy a KEK", err=True)
        raise typer.Exit(1)

    async def work(store: ChildKeyStore) -> int:
        return await store.keys_under(kek_id)

    left = _with_store(settings, work)
    if left:
        typer.echo(
            f"keys: {left} data keys are still wrapped under {kek_id}; run kek-rotate", err=True
        )
        raise typer.Exit(1)
    try:
        LocalFileKeyProvider(settings.data_dir / "keys").destroy_kek(kek_id)
    except KeyProviderError as exc:
        typer.echo(f"keys: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{kek_id} destroyed")


@keys_app.command("destroy-child")
def destroy_child(
    child_id: Annotated[str, typer.Argument(help="The canonical child id.")],
    reason: Annotated[
        str, typer.Option(help="Why the child is erased (recorded in the audit trail).")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    author: Annotated[
        str | None,
        typer.Option(help="Who erases (recorded and audited); default: your login name."),
    ] = None,
) -> None:
    """Erase a child: destroy their data keys (crypto-shredding), delete their person records
    and household links, and record who and why in the audit trail, in one transaction.

    The same erasure retention makes. A child already erased is reported; nothing is recorded.
    """
    from hub.governance.audit import Actor
    from hub.governance.erasure import ErasedChild, ErasureRefused, by_hand_entry

    settings = _settings()
    if not yes:
        typer.echo("keys: pass --yes to erase a child's data", err=True)
        raise typer.Exit(1)
    try:
        audit = by_hand_entry(Actor(sub=author or _login()), reason, child_id)
    except ErasureRefused as exc:
        typer.echo(f"keys: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def work(store: ChildKeyStore) -> tuple[ErasedChild | None, bool]:
        from hub.governance import Governance
        from hub.governance.config import load_governance_settings
        from hub.governance.erasure import erase_child

        trail = Governance.over(
            store.engine, load_governance_settings(), keys_dir=settings.data_dir / "keys"
        ).trail
        erased = await erase_child(
            store.engine, store, trail, child_id, audit=audit, now=datetime.now(UTC)
        )
        return erased, bool(await store.key_records(child_id))

    erased, known = _with_store(settings, work)
    if erased is None and not known:  # a mistyped id must not read as done
        typer.echo(
            f"keys: no child {child_id} is known here (no data keys); nothing erased", err=True
        )
        raise typer.Exit(1)
    if erased is None:
        typer.echo(f"child {child_id}: already erased; nothing to erase, nothing recorded")
        return
    versions = ", ".join(map(str, erased.key_versions))
    keys_done = (
        f"data key versions {versions} destroyed"
        if versions
        else "no live data key (destroyed earlier)"
    )
    typer.echo(
        f"child {child_id} erased: {keys_done}, "
        f"{erased.person_records} person records and {erased.household_links} household "
        f"links deleted; audit record {erased.audit_seq}"
    )


def _login() -> str:
    """The operator's login name, for the audit record when no --author is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid:{os.getuid()}"
