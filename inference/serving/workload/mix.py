"""Several models on the same devices (a composition of experts): which model each request is for.

``--mix OTHER=SHARE[,OTHER=SHARE...]`` routes each request to OTHER with probability SHARE and
to the command's MODEL with what is left, drawn with the workload's seed (a router picking an
expert per request, as Samba-CoE does).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .requests import Workload, WorkloadError


def parse_mix(text: str) -> list[tuple[str, float]]:
    usage = "--mix takes MODEL=SHARE[,MODEL=SHARE...] with shares above 0 summing to less than 1"
    out: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, share = part.rpartition("=")
        try:
            value = float(share)
        except ValueError:
            raise WorkloadError(f"{usage}; cannot read {part!r}") from None
        if not eq or not name or not 0 < value < 1:
            raise WorkloadError(f"{usage}; cannot read {part!r}")
        if any(n == name for n, _ in out):
            raise WorkloadError(f"--mix names {name} twice")
        out.append((name, value))
    if not out or sum(v for _, v in out) >= 1:
        raise WorkloadError(usage)
    return out


def assign_models(workload: Workload, main: str, mix: list[tuple[str, float]], seed: int) -> Workload:
    """Each request routed to a model of ``mix`` by its share, the rest to ``main``."""
    names = [main] + [n for n, _ in mix]
    shares = np.array([1 - sum(v for _, v in mix)] + [v for _, v in mix])
    pick = np.random.default_rng([seed, 1]).choice(len(names), size=len(workload.requests), p=shares)
    reqs = tuple(replace(r, model=names[i]) for r, i in zip(workload.requests, pick.tolist()))
    split = ", ".join(f"{n} {100 * v:.0f}%" for n, v in zip(names, shares))
    return replace(workload, requests=reqs, description=f"{workload.description}; models {split}")
