"""Replay the measured vLLM serving runs on H100 and compare rduflow serve's predictions.

    python benchmarks/serving_calibration.py            # full replays: h100-sxm preset, host.py's VLLM_GPU
    python benchmarks/serving_calibration.py --fit      # + fit the three H100 constants
    python benchmarks/serving_calibration.py --fit --jobs 1 --fit-seconds 60

Data: /work/shared/reference/serving-calibration/runs.json (``--runs`` to point elsewhere):
15 vLLM V1 runs on H100 (inference-sim's ground-truth campaign). Each run is replayed on
``h100-sxm`` with devices = its TP, its engine settings (token budget, sequence cap, block
size, chunked prefill, prefix caching) and its measured KV capacity (total_gpu_kv_blocks x
block size: engine configuration, not a fitted value), and its workload: inference-perf's
constant load (the ``jittered`` arrival) over its stages, its shared-prefix profile, seed 0.
Where a run publishes its measured prompt and output lengths (percentiles), requests take
those lengths (stratified draws from the percentiles; vLLM stopped some outputs early);
where only the s2r identity tells that the mean output was shorter than asked
(output = (E2E - TTFT) / ITL_s2r + 1), outputs take that mean.

Compared like with like: mean E2E and TTFT, their p90/p99, and ITL as the runs define it,
(E2E mean - TTFT mean) / (output mean - 1) of our result.

``--fit`` fits the three constants H100 has (at most three per GPU target): the h100-sxm
preset's ``stream_efficiency`` and ``decode_kv_efficiency`` (the shares of HBM bandwidth weight
streams and decode attention's KV-cache reads sustain) and HostOverheads.request_s, with
host.py's step_s and per_seq_s held, by minimising the median over runs
of |log error|, averaged over mean E2E, mean ITL and mean TTFT (the median, as the targets
are medians and one overloaded run must not pull every constant towards it):

* request_s only delays every request's entry into the engine by the same time, so the
  engine run is the same, shifted: TTFT and E2E grow by exactly request_s, ITL not at all.
  It is profiled analytically.
* The two efficiencies change every step time, so they need replays. Each run is replayed on
  a 3x3 design of (stream_efficiency, decode_kv_efficiency), plus the starting constants, on a
  shortened workload (the first ``--fit-seconds`` of every stage, same rates); a quadratic
  response surface per run and metric (in log, over the reciprocals: a memory-bound time is
  linear in them) interpolates between them, scaled by full/short at the starting constants.
  The fit searches a fine grid of the surface inside the design box.
* The fitted constants are then checked by full replays (the "after" table), and a
  leave-one-model-out fit (same surfaces, the held-out model's runs left out of the fit)
  gives held-out errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rduflow.compiler.target import GpuArch, load_arch
from rduflow.inference.serving.config import EngineConfig
from rduflow.inference.serving.host import VLLM_GPU, HostOverheads
from rduflow.inference.serving.serve import ServeConfig, serve
from rduflow.inference.serving.workload import SharedPrefix, Stage, Workload, parse_arrival, synthesize
from rduflow.models import get_config
from rduflow.models.config import load_config_json

RUNS = Path("/work/shared/reference/serving-calibration/runs.json")
HERE = Path(__file__).resolve().parent / "serving_calibration"
ARCH = "h100-sxm"
SEED = 0
# Models by the runs' Hugging Face names: a library preset, or a config.json copied from the
# model's HF repo (benchmarks/serving_calibration/README.md cites them).
MODELS = {
    "meta-llama/Llama-3.1-70B-Instruct": lambda: get_config("llama-3.1-70b"),
    "meta-llama/Llama-2-7b-hf": lambda: get_config("llama-2-7b"),
    "Qwen/Qwen2.5-7B-Instruct": lambda: get_config("qwen2.5-7b"),
    "mistralai/Mistral-Nemo-Instruct-2407": lambda: load_config_json(HERE / "mistral-nemo-12b/config.json"),
    "01-ai/Yi-34B": lambda: load_config_json(HERE / "yi-34b/config.json"),
}
SKIPPED = {
    "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic":
        "Llama-4-Scout is not expressible in the model library: a shared expert beside top-1 of 16 "
        "routed experts, chunked local attention on 3 of 4 layers, FP8 weights (the library builds "
        "mixtral-style top-k MoE only)",
}
METRICS = ("e2e_mean", "itl_mean", "ttft_mean")  # fitted and judged
EXTRA = ("e2e_p90", "e2e_p99", "ttft_p90", "ttft_p99")  # shown where measured
# The response-surface design (shares of the HBM bandwidth) and the fit's search box (the same box).
STREAM = (0.70, 0.80, 0.90)
DECODE_KV = (0.35, 0.55, 0.75)
REQUEST_S_MAX = 50e-3
SHORT_LENGTH_TOLERANCE = 0.05  # the s2r identity's mean output this much below the profile's: use it


@dataclass(frozen=True)
class Run:
    id: str
    model: str  # HF name
    tp: int
    engine: EngineConfig
    stages: tuple[Stage, ...]
    profile: dict
    measured: dict  # metric -> ms
    prompt_q: dict | None  # measured prompt-length percentiles, if published
    output_q: dict | None  # measured output-length percentiles, if published
    output_mean: float | None  # the s2r identity's mean output, where it is well below the profile's


class RunsError(Exception):
    """runs.json cannot be read: the message names the file, the run and the field."""


def load_runs(path: Path) -> list[Run]:
    try:
        records = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunsError(f"{path}: cannot read its \"runs\" list ({e}); give --runs a runs.json") from None
    runs = []
    for i, r in enumerate(records):
        try:
            runs.append(_run(r))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise RunsError(f"{path}: run {i} ({r.get('id', '?') if isinstance(r, dict) else '?'}): "
                            f"missing or invalid field {e}") from None
    return runs


def _run(r: dict) -> Run:
    """One record of runs.json, as the replay needs it."""
    e, s = r["engine_config"], r["metrics"]["summary"]
    engine = EngineConfig(max_num_batched_tokens=e["max_num_batched_tokens"], max_num_seqs=e["max_num_seqs"],
                          block_size=e["block_size_tokens"], enable_chunked_prefill=e["enable_chunked_prefill"],
                          enable_prefix_caching=e["enable_prefix_caching"], max_model_len=e["max_model_len"],
                          kv_cache_tokens=r["kv_cache"]["total_gpu_kv_blocks"] * r["kv_cache"]["block_size_tokens"])
    measured = {"e2e_mean": s["e2e_ms"]["mean"], "ttft_mean": s["ttft_ms"]["mean"],
                 "itl_mean": s["itl_ms_s2r"]["mean"]}
    for k in ("e2e", "ttft"):
        for p in ("p90", "p99"):
            if s[f"{k}_ms"].get(p) is not None:
                measured[f"{k}_{p}"] = s[f"{k}_ms"][p]
    profile = r["workload"]["shared_prefix_profile"]
    implied = (measured["e2e_mean"] - measured["ttft_mean"]) / measured["itl_mean"] + 1
    short = implied < (1 - SHORT_LENGTH_TOLERANCE) * profile["output_len"]
    return Run(r["id"], r["model"]["hf_name"], r["parallelism"]["tp"], engine,
               tuple(Stage(st["rate_rps"], st["duration_s"]) for st in r["workload"]["stages"]),
               profile, measured, s.get("prompt_len_tokens"), s.get("output_len_tokens"),
               implied if short and "output_len_tokens" not in s else None)


def _quantile_draws(q: dict, n: int, rng: np.random.Generator, low: int) -> np.ndarray:
    """``n`` stratified draws from the distribution whose percentiles ``q`` gives (min..max)."""
    pts = sorted((0.0 if k == "min" else 1.0 if k == "max" else float(k[1:]) / 100, v)
                 for k, v in q.items() if k in ("min", "max") or (k.startswith("p") and k[1:].replace(".", "").isdigit()))
    u = (rng.permutation(n) + 0.5) / n
    x = np.interp(u, [p for p, _ in pts], [v for _, v in pts])
    return np.maximum(np.rint(x), low).astype(np.int64)


def workload(run: Run, stage_s: float | None) -> Workload:
    """The run's workload; ``stage_s``: only the first seconds of every stage (same rates)."""
    stages = [Stage(s.rate, min(s.duration_s, stage_s) if stage_s else s.duration_s) for s in run.stages]
    p = run.profile
    out = round(run.output_mean) if run.output_mean else p["output_len"]
    sp = SharedPrefix(p["num_unique_system_prompts"], p["num_users_per_system_prompt"], p["system_prompt_len"],
                      p["question_len"], out)
    w = synthesize(arrival=parse_arrival("jittered"), input_len=None, output_len=None, requests=None, rate=None,
                   stages=stages, concurrency=None, shared_prefix=sp, seed=SEED, what=run.id)
    if run.prompt_q is None and run.output_q is None:
        return w
    rng = np.random.default_rng(SEED + 1)
    n = len(w.requests)
    inputs = _quantile_draws(run.prompt_q, n, rng, p["system_prompt_len"] + 1) if run.prompt_q else None
    outputs = _quantile_draws(run.output_q, n, rng, 1) if run.output_q else None
    reqs = tuple(replace(r, input_tokens=int(inputs[i]) if inputs is not None else r.input_tokens,
                         output_tokens=int(outputs[i]) if outputs is not None else r.output_tokens)
                 for i, r in enumerate(w.requests))
    return replace(w, requests=reqs, description=w.description + " (measured prompt/output lengths)")


@dataclass(frozen=True)
class Constants:
    """The three constants fitted for H100: two of the preset, one of host.py."""

    stream_efficiency: float
    decode_kv_efficiency: float
    request_s: float

    def arch(self) -> GpuArch:
        return load_arch(ARCH, {"stream_efficiency": self.stream_efficiency,
                                "decode_kv_efficiency": self.decode_kv_efficiency})

    def host(self) -> HostOverheads:
        return replace(VLLM_GPU, request_s=self.request_s)

    def __str__(self) -> str:
        return (f"stream_efficiency {self.stream_efficiency:.3f}, decode_kv_efficiency "
                f"{self.decode_kv_efficiency:.3f}, request_s {self.request_s * 1e3:.1f} ms")


def replay(run: Run, c: Constants, stage_s: float | None) -> dict:
    """Predicted metrics (ms) of one replay, and its wall time."""
    t0 = time.perf_counter()
    cfg = ServeConfig(MODELS[run.model](), c.arch(), run.tp, engine=run.engine, host=c.host(), workers=1)
    res = serve(cfg, workload(run, stage_s))
    m = res.metrics
    if res.run.rejected:
        raise SystemExit(f"{run.id}: {len(res.run.rejected)} requests rejected ({res.run.rejected[0].reason})")
    e2e, ttft = m.e2e_s * 1e3, m.ttft_s * 1e3
    out = {"e2e_mean": e2e.mean(), "ttft_mean": ttft.mean(),
           "itl_mean": (e2e.mean() - ttft.mean()) / (m.output_tokens.mean() - 1)}
    for k, x in (("e2e", e2e), ("ttft", ttft)):
        for p in (90, 99):
            out[f"{k}_p{p}"] = float(np.percentile(x, p))
    out["wall_s"] = time.perf_counter() - t0
    out["requests"] = len(m.id)
    return out


def _replay_job(args) -> dict:
    return replay(*args)


def replay_all(jobs: list[tuple[Run, Constants, float | None]], workers: int) -> list[dict]:
    if workers <= 1:
        return [replay(*j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_replay_job, jobs))


def err(pred: float, meas: float) -> float:
    return pred / meas - 1


def table(title: str, runs: list[Run], preds: list[dict], before: list[dict] | None = None) -> dict:
    """Print predicted vs measured; return the median |error| per metric."""
    print(f"\n{title}")
    cols = METRICS + EXTRA
    errs: dict[str, list[float]] = {c: [] for c in cols}
    for run, p, b in zip(runs, preds, before or [None] * len(runs)):
        print(f"  {run.id}  ({run.model}, TP{run.tp}, {p['requests']} requests, replay {p['wall_s']:.1f} s)")
        for c in cols:
            if c not in run.measured:
                continue
            e = err(p[c], run.measured[c])
            errs[c].append(e)
            was = f"  (before {err(b[c], run.measured[c]):+7.1%})" if b else ""
            print(f"    {c:10s} measured {run.measured[c]:9.2f} ms  predicted {p[c]:9.2f} ms  error {e:+7.1%}{was}")
    med = {c: float(np.median(np.abs(v))) for c, v in errs.items() if v}
    print("  median |error|: " + ", ".join(f"{c} {v:.1%}" for c, v in med.items()))
    if before:  # the same, as a markdown table for docs/validation.md
        print("\n| run | TP | mean E2E | mean ITL | mean TTFT |\n|---|---:|---|---|---|")
        for run, p, b in zip(runs, preds, before):
            cells = " | ".join(f"{err(b[c], run.measured[c]):+.1%} -> {err(p[c], run.measured[c]):+.1%}" for c in METRICS)
            print(f"| {run.id} | {run.tp} | {cells} |")
    return med


# ---- the fit -------------------------------------------------------------------------------------

def _features(stream: np.ndarray, decode_kv: np.ndarray) -> np.ndarray:
    a, b = 1 / np.asarray(stream) - 1, 1 / np.asarray(decode_kv) - 1  # memory-bound times grow as 1 / efficiency
    return np.stack([np.ones_like(a), a, b, a * a, a * b, b * b], axis=-1)


@dataclass
class Surface:
    """Per run and metric, log of the request_s = 0 metric as a quadratic in the reciprocals of
    (stream_efficiency, decode_kv_efficiency), scaled from the shortened workload to the full one."""

    coef: np.ndarray  # runs x metrics x 6
    log_scale: np.ndarray  # runs x metrics: log(full / short) at the starting constants

    def predict(self, stream, decode_kv, request_s) -> np.ndarray:
        """runs x metrics x points (ms), points given as flat arrays."""
        f = _features(stream, decode_kv)  # points x 6
        base = np.exp(np.einsum("rmk,pk->rmp", self.coef, f) + self.log_scale[..., None])
        req = np.asarray(request_s) * 1e3
        add = np.array([1.0 if m in ("e2e_mean", "ttft_mean") else 0.0 for m in METRICS])
        return base + add[None, :, None] * req[None, None, :]


def build_surface(runs: list[Run], start: Constants, full_start: list[dict], stage_s: float,
                  workers: int) -> Surface:
    design = [(a, b) for a in STREAM for b in DECODE_KV] + [(start.stream_efficiency, start.decode_kv_efficiency)]
    jobs = [(run, Constants(a, b, 0.0), stage_s) for run in runs for a, b in design]
    t0 = time.perf_counter()
    res = replay_all(jobs, workers)
    print(f"\nresponse surface: {len(jobs)} shortened replays ({len(design)} design points x {len(runs)} runs, "
          f"first {stage_s:g} s of every stage) in {time.perf_counter() - t0:.0f} s")
    f = _features(np.array([a for a, _ in design]), np.array([b for _, b in design]))
    coef = np.zeros((len(runs), len(METRICS), f.shape[1]))
    log_scale = np.zeros((len(runs), len(METRICS)))
    for i, run in enumerate(runs):
        rows = res[i * len(design):(i + 1) * len(design)]
        for j, m in enumerate(METRICS):
            y = np.log([r[m] for r in rows])
            coef[i, j] = np.linalg.lstsq(f, y, rcond=None)[0]
            # full/short at the starting constants, request_s taken out of the full replay
            shift = start.request_s * 1e3 if m in ("e2e_mean", "ttft_mean") else 0.0
            log_scale[i, j] = math.log((full_start[i][m] - shift) / rows[-1][m])
    return Surface(coef, log_scale)


def fit(surface: Surface, runs: list[Run], keep: np.ndarray) -> Constants:
    """The constants in the design box minimising the median |log error| over the kept runs
    (averaged over the metrics)."""
    a = np.linspace(STREAM[0], STREAM[-1], 41)
    b = np.linspace(DECODE_KV[0], DECODE_KV[-1], 41)
    r = np.linspace(0.0, REQUEST_S_MAX, 101)
    A, B, R = (x.ravel() for x in np.meshgrid(a, b, r, indexing="ij"))
    meas = np.array([[run.measured[m] for m in METRICS] for run in runs])[keep]
    best, best_loss = None, math.inf
    for chunk in np.array_split(np.arange(len(A)), 20):  # bounded memory
        pred = surface.predict(A[chunk], B[chunk], R[chunk])[keep]
        loss = np.median(np.abs(np.log(pred / meas[..., None])), axis=0).mean(axis=0)
        k = int(np.argmin(loss))
        if loss[k] < best_loss:
            best_loss, best = loss[k], Constants(float(A[chunk][k]), float(B[chunk][k]), float(R[chunk][k]))
    return best


def surface_preds(surface: Surface, c: Constants) -> np.ndarray:
    return surface.predict(np.array([c.stream_efficiency]), np.array([c.decode_kv_efficiency]),
                           np.array([c.request_s]))[..., 0]


def held_out(surface: Surface, runs: list[Run]) -> None:
    print("\nleave-one-model-out: fit on the other models' runs, predict the held-out model's "
          "(from the response surface)")
    errs: dict[str, list[float]] = {m: [] for m in METRICS}
    for model in dict.fromkeys(r.model for r in runs):
        keep = np.array([r.model != model for r in runs])
        h = fit(surface, runs, keep)
        pred = surface_preds(surface, h)
        print(f"  without {model}: {h}")
        for i in np.flatnonzero(~keep):
            es = [err(pred[i, j], runs[i].measured[m]) for j, m in enumerate(METRICS)]
            for m, e in zip(METRICS, es):
                errs[m].append(e)
            print(f"    {runs[i].id}: " + ", ".join(f"{m} {e:+.1%}" for m, e in zip(METRICS, es)))
    print("  held-out median |error|: " + ", ".join(f"{m} {np.median(np.abs(v)):.1%}" for m, v in errs.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=RUNS, help="runs.json (default: %(default)s)")
    ap.add_argument("--fit", action="store_true",
                    help="fit h100-sxm's stream_efficiency and decode_kv_efficiency and host.py's request_s")
    ap.add_argument("--fit-seconds", type=float, default=60.0,
                    help="the fit's replays keep the first this many seconds of every stage (default 60)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="replays in parallel")
    args = ap.parse_args(argv)
    if not args.runs.is_file():
        print(f"serving_calibration: {args.runs} not found (give --runs PATH to runs.json)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        loaded = load_runs(args.runs)
    except RunsError as e:
        print(f"serving_calibration: {e}", file=sys.stderr)
        return 2
    runs = []
    for run in loaded:
        if run.model in SKIPPED:
            print(f"skipped {run.id}: {SKIPPED[run.model]}")
        elif run.model not in MODELS:
            print(f"skipped {run.id}: no model config for {run.model}")
        else:
            runs.append(run)
    for run in runs:
        if run.prompt_q or run.output_q:
            print(f"{run.id}: measured prompt and output lengths (percentiles) used")
        elif run.output_mean:
            print(f"{run.id}: outputs of {round(run.output_mean)} tokens, the measured mean by the s2r identity "
                  f"(the profile asks {run.profile['output_len']})")
    preset = load_arch(ARCH)
    start = Constants(preset.stream_efficiency, preset.decode_kv_efficiency, VLLM_GPU.request_s)
    print(f"\n{ARCH} preset and host.py: {start}; host.py's step_s {VLLM_GPU.step_s * 1e3:.2f} ms "
          f"and per_seq_s {VLLM_GPU.per_seq_s * 1e6:.0f} us (held)")
    before = replay_all([(run, start, None) for run in runs], args.jobs)
    table("full replays, the preset's and host.py's constants", runs, before)
    if args.fit:
        surface = build_surface(runs, start, before, args.fit_seconds, args.jobs)
        h = fit(surface, runs, np.ones(len(runs), dtype=bool))
        print(f"\nfitted: {h}")
        on_edge = [n for n, v, box in (("stream_efficiency", h.stream_efficiency, STREAM),
                                       ("decode_kv_efficiency", h.decode_kv_efficiency, DECODE_KV),
                                       ("request_s", h.request_s, (0.0, REQUEST_S_MAX)))
                   if v in (box[0], box[-1])]
        if on_edge:
            print(f"  on the edge of the search box: {', '.join(on_edge)}")
        pred = surface_preds(surface, h)
        print("  response surface at the fit: median |error| " + ", ".join(
            f"{m} {np.median([abs(err(pred[i, j], r.measured[m])) for i, r in enumerate(runs)]):.1%}"
            for j, m in enumerate(METRICS)))
        after = replay_all([(run, h, None) for run in runs], args.jobs)
        table("full replays, fitted constants (before = the preset's and host.py's)", runs, after, before)
        held_out(surface, runs)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
