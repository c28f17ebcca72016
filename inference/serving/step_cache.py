"""Building a step table, once: simulated in parallel, kept on disk, reused across runs.

The file name is a hash of everything the table depends on: the model (a library or
config.json model's full configuration, or a model file's bytes, with the precisions), the
target (its full description, device count and back-end options), the grid, and the source
of rduflow's models, compiler, simulator and IR (a change to any of them is a new table).
The model's serving facts (weights, KV bytes per token) are kept the same way, so a run
whose table is complete never builds the model's graph. The folder is
``$RDUFLOW_CACHE_DIR`` or ``~/.cache/rduflow``; ``steps/`` in it holds one JSON file per
table and per model. A damaged or unreadable file is rebuilt; an unwritable folder only
costs the reuse.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rduflow.compiler.loading import LoadError, write_atomically
from rduflow.inference.model_source import ModelSource
from .batch import Program
from .memory import ModelFacts
from .step_model import Grid, SampledStepModel, grid_programs

FORMAT = 1


def cache_dir() -> Path:
    return Path(os.environ.get("RDUFLOW_CACHE_DIR") or Path.home() / ".cache" / "rduflow") / "steps"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The source rduflow's step times come from."""
    import rduflow.compiler
    import rduflow.ir
    import rduflow.models
    import rduflow.simulator

    h = hashlib.sha256()
    for pkg in (rduflow.ir, rduflow.models, rduflow.compiler, rduflow.simulator):
        for root in sorted(pkg.__path__):
            for path in sorted(Path(root).rglob("*")):
                if path.suffix in (".py", ".toml", ".lark") and path.is_file():
                    h.update(str(path.relative_to(root)).encode())
                    h.update(path.read_bytes())
    return h.hexdigest()


def model_identity(source: ModelSource, weights: str, kv_dtype: str) -> str:
    """What the model's graphs are built from."""
    h = hashlib.sha256()
    h.update(f"{weights} {kv_dtype} {source.dims!r}\n".encode())
    if source.config is not None:
        h.update(repr(asdict(source.config)).encode())
    else:
        h.update(source.path.read_bytes())
    return h.hexdigest()


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in (f"format {FORMAT}", code_digest(), *parts):
        h.update(p.encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def table_path(identity: str, backend_key: tuple, grid: Grid | None) -> Path:
    grid_text = json.dumps(asdict(grid) if grid else None, sort_keys=True)
    return cache_dir() / f"{_key(identity, repr(backend_key), grid_text)}.json"


def load_facts(identity: str) -> ModelFacts | None:
    try:
        return ModelFacts(**json.loads((cache_dir() / f"model-{_key(identity)}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_facts(identity: str, facts: ModelFacts) -> None:
    _write(cache_dir() / f"model-{_key(identity)}.json", asdict(facts))


def _write(path: Path, data) -> None:
    """Whole or not at all (readers see the old file or the new one); a cache that cannot be
    written only costs the reuse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: f.write(json.dumps(data).encode()))
    except (OSError, LoadError):
        pass


class StepTable:
    """Program -> cost vector, simulated on demand through ``simulate`` (a list of programs at
    once, so a back end can run them in parallel) and saved to ``path``."""

    def __init__(self, path: Path | None, simulate: Callable[[list[Program]], list[np.ndarray]]):
        self.path, self.simulate = path, simulate
        self.points: dict[Program, np.ndarray] = self._load() if path else {}
        self.simulated = 0  # points simulated by this process (not read from disk)

    def ensure(self, programs: list[Program]) -> None:
        todo = [p for p in dict.fromkeys(programs) if p not in self.points]
        if not todo:
            return
        for p, v in zip(todo, self.simulate(todo)):
            self.points[p] = np.asarray(v, dtype=np.float64)
        self.simulated += len(todo)
        self.save()

    def get(self, program: Program) -> np.ndarray:
        if program not in self.points:
            self.ensure([program])
        return self.points[program]

    def _load(self) -> dict[Program, np.ndarray]:
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != FORMAT:
                return {}
            return {Program(*p["program"]): np.array(p["cost"], dtype=np.float64) for p in data["points"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(self) -> None:
        if self.path is None:
            return
        data = {"format": FORMAT, "points": [{"program": [p.batch, p.seq, p.past], "cost": list(map(float, v))}
                                              for p, v in sorted(self.points.items(), key=lambda kv: (kv[0].batch, kv[0].seq, kv[0].past))]}
        _write(self.path, data)


def build(grid: Grid, table: StepTable) -> SampledStepModel:
    table.ensure(grid_programs(grid))
    return SampledStepModel(grid, table.points, table)
