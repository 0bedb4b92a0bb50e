"""Run a real `hub serve` process against the test broker and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from hub.auth import TokenIssuer
from hub.crypto.token_keys import load_or_create_signing_key
from hub.domain.roles import Role

__all__ = ["PATIENCE", "HubProcess", "free_port", "poll"]

_T = TypeVar("_T")

PATIENCE = float(os.environ.get("HUB_TEST_PATIENCE", "180"))
"""Seconds an end-to-end test waits for the pipeline before it fails."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def poll(
    check: Callable[[], Awaitable[_T]],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - a polling deadline, not cancellation
    interval: float = 0.1,
) -> _T:
    """Call ``check`` until it returns a truthy value; fail with the last value after timeout.

    The default deadline is generous (``PATIENCE``): a passing check returns at once, and a
    shared, loaded machine must not turn slow progress into a failure.
    """
    timeout = PATIENCE if timeout is None else timeout
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


class HubProcess:
    """A `hub serve` subprocess with its own data dir, topic prefix and consumer groups."""

    def __init__(self, *, env: dict[str, str], data_dir: Path, role: str = "all") -> None:
        self.env = env
        self.data_dir = data_dir
        self.role = role
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"hub-{self.port}.log"
        key = load_or_create_signing_key(data_dir / "keys")
        self._issuer = TokenIssuer(key, issuer="hub-local", audience="safeguarding-hub")

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def token(
        self,
        *,
        sub: str = "duty-1",
        agency: str = "northshire-cs",
        role: Role = Role.duty_officer,
        team: str | None = None,
        ttl: timedelta = timedelta(minutes=30),
    ) -> str:
        """A token signed with this hub's local key (default: the CSC duty officer, whom the
        default rules show partners' concerns about any child, as MASH triage needs)."""
        return self._issuer.issue(sub=sub, agency=agency, role=role, team=team, ttl=ttl)

    def headers(self, **kwargs: Any) -> dict[str, str]:
        """Authorization header for a token (see ``token``)."""
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    def start(self, *, timeout: float = PATIENCE) -> None:
        """Start the process and wait until /readyz says ready."""
        self.launch()
        self.wait_ready(timeout=timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (``wait_ready`` waits)."""
        env = {**os.environ, **self.env, "HUB_DATA_DIR": str(self.data_dir)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(self.port), "--role", self.role],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, *, timeout: float = PATIENCE) -> None:
        """Wait until the launched process's /readyz says ready (fails if it exits)."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"hub not ready within {timeout}s:\n{self.tail()}")

    def stop(self, *, timeout: float = 40.0) -> int | None:
        """Graceful stop (SIGTERM), waiting for in-flight work to finish."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """Crash the process (SIGKILL): no shutdown hooks run, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def stored_entries(self, child_id: str) -> int:
        """How many narrative entries the store holds for a child (progress, not disclosure).

        Read straight from the hub's database, so polling for progress writes no audit
        records; what a caller may see is then asserted once through the API.
        """
        from sqlalchemy import func, select

        from hub.store.db import create_engine
        from hub.store.schema import narrative_entries

        engine = create_engine(self.env["HUB_DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                query = select(func.count()).where(narrative_entries.c.child_id == child_id)
                return int((await conn.execute(query)).scalar_one())
        finally:
            await engine.dispose()

    async def has_event(self, event_id: str) -> bool:
        """Whether the narrative store holds an event (read straight from the database)."""
        from sqlalchemy import func, select

        from hub.store.db import create_engine
        from hub.store.schema import narrative_entries

        engine = create_engine(self.env["HUB_DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                query = select(func.count()).where(narrative_entries.c.event_id == event_id)
                return int((await conn.execute(query)).scalar_one()) > 0
        finally:
            await engine.dispose()

    def run_cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a `hub` CLI command with this hub's environment."""
        env = {**os.environ, **self.env, "HUB_DATA_DIR": str(self.data_dir)}
        return subprocess.run(
            [sys.executable, "-m", "hub", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_all(hubs: Iterable[HubProcess]) -> None:
    """Start several processes of one hub: the first alone (it migrates the store, which
    processes starting together would race over), then the rest side by side."""
    first, *rest = hubs
    first.start()
    for hub in rest:
        hub.launch()
    for hub in rest:
        hub.wait_ready()
