"""``--max-rate``: the highest arrival rate at which the target still meets the SLOs.

A rate passes when at least ``attainment`` of its requests (rejected ones count as missing)
meet every SLO -- DistServe's definition of the goodput-optimal rate (Zhong et al., OSDI
2024, section 2), at its 90% default. Latency grows with the rate, so the search brackets
the answer by doubling or halving from a first guess, then bisects geometrically until the
passing and failing rates are within ``precision`` (5%) of each other; the answer is the
highest passing rate, so it is exact to that precision from below. Every rate runs the same
workload shape (request count, lengths, arrival process, seed) with only the rate changed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from .metrics import Slo
from .serve import ServeConfig, ServeResult, serve
from .workload import Workload

ATTAINMENT = 0.9
PRECISION = 0.05
MAX_RUNS = 40
MIN_RATE = 1e-3  # requests/s: below this nothing is said to meet the SLOs
STEADY_SHARE = 0.9  # a run serving less than this share of its offered rate was one burst
MAX_DOUBLINGS = 20  # above first x 2^20 the whole workload arrives at once: faster changes nothing


@dataclass
class RateSearch:
    slo: Slo
    attainment: float
    precision: float
    tried: list[tuple[float, float]] = field(default_factory=list)  # (rate, share meeting the SLOs)
    best: ServeResult | None = None
    best_rate: float | None = None
    lowest_failing: float | None = None

    @property
    def served_rate(self) -> float | None:
        """Requests per second the best run completed (its throughput)."""
        if self.best is None or not len(self.best.metrics.id):
            return None
        m = self.best.metrics
        return len(m.id) / float((m.sent_s + m.e2e_s).max() - m.sent_s.min())

    @property
    def steady(self) -> bool:
        """Whether the best run served about what it was offered: a workload too short for its
        rate is served as one burst, and its 'max rate' says little about a steady stream."""
        served = self.served_rate
        return served is not None and served >= STEADY_SHARE * self.best_rate

    def to_dict(self) -> dict:
        return {"slo": self.slo.describe(), "attainment": self.attainment, "precision": self.precision,
                "max_rate_per_s": self.best_rate, "lowest_failing_rate_per_s": self.lowest_failing,
                "served_rate_per_s": self.served_rate, "steady": self.steady,
                "tried": [{"rate_per_s": r, "attained": a} for r, a in self.tried]}

    def describe(self) -> str:
        head = (f"max rate meeting {self.slo.describe()} for {100 * self.attainment:.0f}% of requests: "
                + (f"{self.best_rate:.3g} requests/s" if self.best_rate else f"none down to {MIN_RATE:g} requests/s")
                + (f" (fails at {self.lowest_failing:.3g}; {len(self.tried)} runs)" if self.lowest_failing else
                   " (met at every rate tried: the whole workload arriving at once)" if self.best_rate else ""))
        if self.best is not None and not self.steady:
            head += (f"\n  NOT STEADY: the run at that rate served {self.served_rate:.3g} requests/s: its "
                     f"{len(self.best.workload.requests)} requests came as one burst; use more --requests "
                     "for a steady-state answer")
        if self.best is not None:
            from .report import report_dict, summary

            return head + "\n" + summary(report_dict(self.best, self.slo))
        return head


def attained(r: ServeResult, slo: Slo) -> float:
    total = len(r.metrics.id) + len(r.run.rejected)
    return float(r.metrics.meets(slo).sum()) / total if total else 0.0


def max_rate(cfg: ServeConfig, make: Callable[[float], Workload], slo: Slo, *, first: float | None = None,
             attainment: float = ATTAINMENT, precision: float = PRECISION, progress: bool = False) -> RateSearch:
    out = RateSearch(slo, attainment, precision)

    def run(rate: float) -> bool:
        r = serve(cfg, make(rate), progress=False)
        a = attained(r, slo)
        out.tried.append((rate, a))
        if progress:
            print(f"rduflow: rate {rate:.4g}/s: {100 * a:.1f}% meet the SLOs", file=sys.stderr, flush=True)
        if a >= attainment:
            if out.best_rate is None or rate > out.best_rate:
                out.best, out.best_rate = r, rate
            return True
        out.lowest_failing = rate if out.lowest_failing is None else min(out.lowest_failing, rate)
        return False

    rate = first or 1.0
    while len(out.tried) < MAX_RUNS:  # bracket
        if run(rate):
            if out.lowest_failing is not None or rate >= (first or 1.0) * 2**MAX_DOUBLINGS:
                break
            rate *= 2
        else:
            if out.best_rate is not None:
                break
            rate /= 2
            if rate < MIN_RATE:
                return out
    while (out.best_rate and out.lowest_failing and out.lowest_failing / out.best_rate > 1 + precision
           and len(out.tried) < MAX_RUNS):
        run(math.sqrt(out.best_rate * out.lowest_failing))
    return out
