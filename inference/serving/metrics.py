"""What users and operators see: per-request latencies, their distributions, throughput.

Names follow vLLM's ``benchmark_serving`` (TTFT, TPOT, ITL, E2E latency, request and token
throughput, goodput) and Vidur's metrics (scheduling delay, batch size and KV use over time):

* TTFT: send to first token; E2E: send to last token (client side, so the engine's
  per-request host time counts);
* TPOT: per request, (E2E - TTFT) / (output tokens - 1); ITL: every gap between two
  consecutive tokens of a request (so a preemption shows as one long gap);
* queue: send to the first step that computes any of the request's tokens;
* goodput: completed requests per second that meet every SLO given (TTFT, and ITL taken
  per request as its TPOT -- the mean gap, as DistServe defines the per-token SLO).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import EngineRun

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Slo:
    ttft_s: float | None = None
    itl_s: float | None = None
    e2e_s: float | None = None

    @staticmethod
    def parse(text: str) -> Slo:
        from rduflow.inference.errors import LlmSimError

        usage = "--slo takes NAME=VALUE[,...] with NAME ttft, itl or e2e and VALUE like 500ms or 2s"
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, eq, value = part.partition("=")
            name = name.strip().lower()
            if not eq or name not in ("ttft", "itl", "tpot", "e2e"):
                raise LlmSimError(f"{usage}; cannot read {part!r}")
            name = "itl" if name == "tpot" else name
            v = value.strip().lower()
            if not v.endswith("s"):
                raise LlmSimError(f"{usage}; give {name}={value.strip()} a unit (ms or s)")
            scale = 1e-3 if v.endswith("ms") else 1.0
            v = v[:-2] if v.endswith("ms") else v[:-1]
            try:
                seconds = float(v) * scale
            except ValueError:
                raise LlmSimError(f"{usage}; {value!r} is not a time") from None
            if not (seconds > 0 and seconds < float("inf")):
                raise LlmSimError(f"--slo {name} must be a positive time, is {value!r}")
            if name + "_s" in out:
                raise LlmSimError(f"--slo gives {name} twice")
            out[name + "_s"] = seconds
        if not out:
            raise LlmSimError(usage)
        return Slo(**out)

    def describe(self) -> str:
        parts = [f"{n}={v * 1e3:g}ms" for n, v in (("ttft", self.ttft_s), ("itl", self.itl_s), ("e2e", self.e2e_s))
                 if v is not None]
        return ",".join(parts)


@dataclass
class RequestMetrics:
    """Per finished request, arrays in request order (seconds)."""

    id: np.ndarray
    sent_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    queue_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray  # NaN for one-token outputs
    e2e_s: np.ndarray
    preemptions: np.ndarray
    itl_s: np.ndarray  # every inter-token gap of every request, concatenated

    @staticmethod
    def of(run: EngineRun) -> RequestMetrics:
        seqs = run.sequences
        n = len(seqs)
        sent = np.array([s.sent_s for s in seqs])
        first = np.array([s.token_times[0] for s in seqs]) if n else np.zeros(0)
        fin = np.array([s.finished_s for s in seqs]) if n else np.zeros(0)
        out = np.array([s.req.output_tokens for s in seqs], dtype=np.int64)
        ttft = first - sent
        e2e = fin - sent
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)
        gaps = [np.diff(s.token_times) for s in seqs if len(s.token_times) > 1]
        return RequestMetrics(
            id=np.array([s.req.id for s in seqs], dtype=np.int64), sent_s=sent,
            input_tokens=np.array([s.req.input_tokens for s in seqs], dtype=np.int64), output_tokens=out,
            queue_s=np.array([s.first_scheduled_s for s in seqs]) - sent if n else np.zeros(0),
            ttft_s=ttft, tpot_s=tpot, e2e_s=e2e,
            preemptions=np.array([s.preemptions for s in seqs], dtype=np.int64),
            itl_s=np.concatenate(gaps) if gaps else np.zeros(0))

    def meets(self, slo: Slo) -> np.ndarray:
        ok = np.ones(len(self.id), dtype=bool)
        if slo.ttft_s is not None:
            ok &= self.ttft_s <= slo.ttft_s
        if slo.itl_s is not None:
            ok &= np.nan_to_num(self.tpot_s, nan=0.0) <= slo.itl_s
        if slo.e2e_s is not None:
            ok &= self.e2e_s <= slo.e2e_s
        return ok


def distribution(x: np.ndarray, scale: float = 1e3) -> dict[str, float | None]:
    """mean and percentiles (in ms by default); None for an empty sample."""
    x = x[~np.isnan(x)] if len(x) else x
    if not len(x):
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    return {"mean": float(x.mean()) * scale, **{f"p{p}": float(np.percentile(x, p)) * scale for p in PERCENTILES}}
