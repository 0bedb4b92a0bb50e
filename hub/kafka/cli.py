"""Commands ``hub kafka start|stop|status`` that run the hub's local single-node broker."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.kafka.local import LocalKafka, LocalKafkaError, LocalKafkaStatus
from hub.settings import load_settings

__all__ = ["kafka_app"]

kafka_app = typer.Typer(
    help="Run the hub's own single-node Apache Kafka (KRaft) broker.", no_args_is_help=True
)


def _describe(status: LocalKafkaStatus) -> str:
    if not status.running:
        return f"kafka {status.version} stopped ({status.bootstrap}); log {status.log_path}"
    owner = f"pid {status.pid}" if status.pid is not None else "not started by this hub"
    return f"kafka {status.version} running at {status.bootstrap} ({owner}); log {status.log_path}"


@kafka_app.command()
def start(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 120.0,
) -> None:
    """Fetch the jars if needed, then start the broker and wait until it serves clients."""
    settings = load_settings()
    if settings.kafka_bootstrap:
        typer.echo(
            f"note: HUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} is set; "
            "the hub uses that cluster, not this local broker",
            err=True,
        )
    try:
        status = LocalKafka(settings).start(timeout=timeout)
    except LocalKafkaError as exc:
        typer.echo(f"kafka: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(_describe(status))


@kafka_app.command()
def stop(
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 30.0,
) -> None:
    """Stop the broker this hub started; does nothing if it is not running."""
    broker = LocalKafka(load_settings())
    stopped = broker.stop(timeout=timeout)
    typer.echo("kafka stopped" if stopped else "kafka: no broker started by this hub was running")


@kafka_app.command()
def status() -> None:
    """Print whether the broker runs; exit 1 when it does not."""
    current = LocalKafka(load_settings()).status()
    typer.echo(_describe(current))
    if not current.running:
        raise typer.Exit(1)
