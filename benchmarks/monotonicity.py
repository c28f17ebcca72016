"""How often does more buffering or more bandwidth make a generated pipeline slower?

docs/simulator.md explains why it can when streams share a resource (in any engine whose
resources never idle while a tile waits). This script measures how often and by how much,
on three families of generated programs:

* ``chain, unshared``: read -> compute/buffer stages -> write, the read and write on
  different tiers (a max-plus system: the answer must be 0);
* ``chain, shared``: the same, read and write on one tier;
* ``dag``: reads from HBM or DDR (some through one AGCU), compute units of one or two
  inputs, buffers, forks, a write of every unconsumed value, looped kernels (1 or 3 calls).

For each program it simulates a copy with one stream deeper (or one buffer bigger) and a
copy with more HBM or DDR bandwidth, and counts the copies that are slower.

    python benchmarks/monotonicity.py [--examples 1000]

The draws are derandomized, so a run prints the same figures every time.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rduflow.ir import TensorType
from rduflow.compiler.target import load_arch
from rduflow.simulator import PlacedProgram, simulate
from rduflow.simulator.errors import SimulationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "simulator"))
from simhelpers import ROUND, muls  # noqa: E402
from test_properties import COLS, Chain, chains  # noqa: E402
from test_properties import deeper as deeper_chain  # noqa: E402


@dataclass(frozen=True)
class Node:
    kind: str  # read | compute | buffer
    inputs: tuple[int, ...] = ()
    tier: str = "hbm"
    agcu: int = -1
    muls: int = 1
    pcus: int = 1
    slots: int = 1


@dataclass(frozen=True)
class Dag:
    rows: int
    nodes: tuple[Node, ...]
    sinks: tuple[str, ...]  # the tier of each write, in the order of the unconsumed nodes
    tiles: tuple[int, ...]  # per stream, in the order they are made
    depths: tuple[int, ...]
    repeat: int
    hbm_gb_s: float
    ddr_gb_s: float

    def arch(self):
        return load_arch("sn40l", {**ROUND, "memory.hbm.bandwidth_gb_s": self.hbm_gb_s,
                                   "memory.ddr.bandwidth_gb_s": self.ddr_gb_s})

    def program(self):
        prog = PlacedProgram()
        sec = prog.section("dag", repeat=self.repeat)
        nbytes = self.rows * COLS * 4
        order = iter(range(len(self.tiles)))
        vals = []
        for i, n in enumerate(self.nodes):
            if n.kind == "read":
                vals.append(sec.mem_read(f"x{i}", TensorType([self.rows, COLS], "f32"), tier=n.tier, agcu=n.agcu))
            elif n.kind == "compute":
                ins = []
                for j in n.inputs:
                    k = next(order)
                    ins.append(sec.stream(vals[j], self.tiles[k], depth=self.depths[k]))
                vals.append(sec.compute(f"c{i}", ins, muls(n.muls) if len(ins) == 1 else _add_then(n.muls),
                                        pcus=n.pcus))
            else:
                k = next(order)
                cap = n.slots * math.ceil(nbytes / self.tiles[k])
                vals.append(sec.buffer(sec.stream(vals[n.inputs[0]], self.tiles[k]), pmus=math.ceil(cap / 2**19),
                                       capacity=cap, name=f"b{i}"))
        for s, (i, tier) in enumerate(zip(_unconsumed(self.nodes), self.sinks)):
            k = next(order)
            sec.mem_write(sec.stream(vals[i], self.tiles[k], depth=self.depths[k]), f"y{s}", tier=tier)
        return prog.finish()


def _add_then(k: int):
    def body(b, x, y):
        return muls(k)(b, b.emit("add", x, y))

    return body


def _unconsumed(nodes) -> list[int]:
    used = {j for n in nodes for j in n.inputs}
    return [i for i in range(len(nodes)) if i not in used]


@st.composite
def dags(draw) -> Dag:
    """Joins only take values from different components: a fork never meets itself again
    (a fork and join with too little buffering on one side deadlocks, on hardware too)."""
    nodes: list[Node] = []
    comp: list[int] = []
    for _ in range(draw(st.integers(2, 6))):
        i = len(nodes)
        kind = "read" if i == 0 else draw(st.sampled_from(["read", "compute", "compute", "buffer"]))
        if kind == "read":
            nodes.append(Node("read", tier=draw(st.sampled_from(["hbm", "ddr"])), agcu=draw(st.sampled_from([-1, 0, 1]))))
            comp.append(i)
            continue
        a = draw(st.integers(0, i - 1))
        if kind == "compute":
            others = [j for j in range(i) if comp[j] != comp[a]]
            ins = (a,) if not others or draw(st.booleans()) else tuple(sorted((a, draw(st.sampled_from(others)))))
            nodes.append(Node("compute", ins, muls=draw(st.integers(1, 8)), pcus=draw(st.integers(1, 8))))
            joined = {comp[j] for j in ins}
            comp = [comp[a] if c in joined else c for c in comp]
        else:
            nodes.append(Node("buffer", (a,), slots=draw(st.integers(1, 6))))
        comp.append(comp[a])
    sinks = tuple(draw(st.sampled_from(["hbm", "ddr"])) for _ in _unconsumed(nodes))
    n = sum(len(x.inputs) for x in nodes) + len(sinks)
    return Dag(draw(st.sampled_from([16, 32, 64])), tuple(nodes), sinks,
               tuple(draw(st.sampled_from([1, 2, 4, 8, 16])) for _ in range(n)),
               tuple(draw(st.integers(0, 4)) for _ in range(n)), draw(st.sampled_from([1, 3])),
               draw(st.floats(50, 4000)), draw(st.floats(20, 400)))


def deeper(p, data):
    """One stream one to four tiles deeper, or one buffer one to four slots bigger."""
    if isinstance(p, Chain):
        return deeper_chain(p, data)
    buffers = [i for i, n in enumerate(p.nodes) if n.kind == "buffer"]
    if buffers and data.draw(st.booleans()):
        i = data.draw(st.sampled_from(buffers))
        nodes = list(p.nodes)
        nodes[i] = replace(nodes[i], slots=nodes[i].slots + data.draw(st.integers(1, 4)))
        return replace(p, nodes=tuple(nodes))
    k = data.draw(st.integers(0, len(p.depths) - 1))
    depths = list(p.depths)
    depths[k] = max(depths[k] or 2, 1) + data.draw(st.integers(1, 4))
    return replace(p, depths=tuple(depths))


@dataclass
class Tally:
    programs: int = 0
    slower: dict[str, list[float]] = field(default_factory=lambda: {"buffering": [], "bandwidth": []})

    def line(self, name: str) -> str:
        parts = [f"{name:16s} {self.programs:5d} programs"]
        for what, ratios in self.slower.items():
            worst = f", worst +{(max(ratios) - 1) * 100:.2f}%" if ratios else ""
            parts.append(f"more {what}: {len(ratios)} slower{worst}")
        return "; ".join(parts)


def measure(strategy, examples: int, tally: Tally) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy, st.data())
    def run(p, data):
        try:
            base = simulate(p.program(), p.arch()).total_s
        except SimulationError:  # a generated program that deadlocks: not a sample
            return
        tally.programs += 1
        tier = data.draw(st.sampled_from(["hbm", "ddr"]))
        faster = replace(p, **{f"{tier}_gb_s": getattr(p, f"{tier}_gb_s") * data.draw(st.floats(1.01, 4.0))})
        for what, q in (("buffering", deeper(p, data)), ("bandwidth", faster)):
            t = simulate(q.program(), q.arch()).total_s
            if t > base * (1 + 1e-12):
                tally.slower[what].append(t / base)

    run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1000, help="programs per family")
    args = ap.parse_args()
    families = {
        "chain, unshared": chains().map(lambda c: replace(c, dst="ddr" if c.src == "hbm" else "hbm")),
        "chain, shared": chains().map(lambda c: replace(c, dst=c.src)),
        "dag": dags(),
    }
    for name, strategy in families.items():
        tally = Tally()
        measure(strategy, args.examples, tally)
        print(tally.line(name), flush=True)


if __name__ == "__main__":
    main()
