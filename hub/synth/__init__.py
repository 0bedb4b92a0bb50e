"""The deterministic synthetic population: invented children, families and agency files.

``generate(children, seed)`` makes the same population and byte-identical files for the same
arguments; ``write(population, out)`` puts them on disk with ``truth.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hub.synth.formats import AGENCIES, render_cin, render_health, render_police, render_schools
from hub.synth.population import Population, people
from hub.synth.truth import record_key

__all__ = ["AGENCIES", "Synthetic", "generate", "record_key", "write"]


@dataclass(slots=True)
class Synthetic:
    """A population, its native agency files and the truth (record key -> person id)."""

    population: Population
    files: dict[str, bytes]
    truth: dict[str, str]

    def truth_json(self) -> bytes:
        """The truth file: people (household, twin) and which records are which person."""
        doc = {
            "seed": self.population.seed,
            "children": len(self.population.children),
            "people": {
                p.pid: {"child": p.is_child, "household": p.household, "twin_of": p.twin_of}
                for p in self.population.people.values()
            },
            "households": {
                h.hid: {
                    "children": h.children,
                    "mother": h.mother,
                    "partner": h.partner,
                    "moved": h.previous is not None,
                }
                for h in self.population.households
            },
            "records": dict(sorted(self.truth.items())),
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()


def generate(children: int, seed: int) -> Synthetic:
    """Invent ``children`` children and render every agency's files; deterministic."""
    population = people(children, seed)
    truth: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for render in (render_health, render_schools, render_police, render_cin):
        files.update(render(population, truth))
    return Synthetic(population, files, truth)


def write(synthetic: Synthetic, out: Path) -> list[Path]:
    """Write every file and ``truth.json`` under ``out``; returns the paths written."""
    written = []
    for name, body in sorted({**synthetic.files, "truth.json": synthetic.truth_json()}.items()):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(path)
    return written
