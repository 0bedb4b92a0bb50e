"""``hub synth``: write a deterministic synthetic population's agency files and truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.synth import generate, write

__all__ = ["synth_app"]

synth_app = typer.Typer(help="Generate a synthetic population as native agency files.")


@synth_app.callback(invoke_without_command=True)
def synth(
    children: Annotated[int, typer.Option(min=1, help="How many children to invent.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 1,
    out: Annotated[Path, typer.Option(help="Directory to write into.")] = Path("synth"),
) -> None:
    """Invent children, families and their agency records, with the truth of who is who."""
    synthetic = generate(children, seed)
    paths = write(synthetic, out)
    typer.echo(
        f"{len(synthetic.population.children)} children, {len(synthetic.truth)} agency records, "
        f"{len(paths)} files written to {out}"
    )
