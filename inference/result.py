"""The JSON report of a run (schema ``rduflow.simulate/1``, documented in docs/report-schema.md)
and the readable summary printed by ``rduflow simulate``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .energy import device_energy_j, run_energy
from .run import Run

SCHEMA = "rduflow.simulate/1"
_MS = 1e3


def report_dict(run: Run) -> dict[str, Any]:
    cfg = run.config
    spec = cfg.spec
    itl = run.itl_s
    decode_s = run.device_decode_s
    return {
        "schema": SCHEMA,
        "model": run.model,
        "model_source": run.model_source,
        "arch": run.arch_name,
        "arch_kind": run.arch_kind,
        "device": run.device,
        "sockets": run.devices,
        "batch": cfg.batch,
        "prompt_tokens": cfg.prompt,
        "output_tokens": cfg.gen,
        "weights": cfg.weights,
        "kv_dtype": cfg.kv_dtype,
        "prefix_cache_tokens": cfg.prefix_cache,
        "spec_decode": None if spec is None else {
            "draft": getattr(spec.draft, "name", spec.draft), "k": spec.k, "accept": spec.accept, "tokens_per_step": run.tokens_per_step},
        "options": {"cuda_graphs": cfg.cuda_graphs} if run.arch_kind == "gpu" else {"kernel_looping": cfg.kernel_looping},
        "ttft_ms": run.ttft_s * _MS,
        "itl_ms": _itl(run),
        "tokens_per_s_per_user": (1.0 / float(itl.mean())) if len(itl) else None,
        "throughput_tokens_per_s": cfg.batch * cfg.gen / run.e2e_s,
        "e2e_ms": run.e2e_s * _MS,
        "time_breakdown_ms": _time_breakdown(run),
        "bandwidth": _bandwidth(run, run.device_ttft_s + run.device_decode_s, prefill=True, decode=True),
        "utilization": _utilization(run, prefill=True, decode=True),
        "bounds": _bounds(run),
        "breakdown": {"by_section_ms": _breakdown(run, "by_section"), "by_kind_ms": _breakdown(run, "by_kind")},
        "phases": {
            "prefill": {"time_ms": run.device_ttft_s * _MS, "flops_per_device": _prefill_sum(run, lambda s: s.flops),
                        "bandwidth": _bandwidth(run, run.device_ttft_s, prefill=True, decode=False),
                        "utilization": _utilization(run, prefill=True, decode=False)},
            "decode": None if not len(itl) else {
                "time_ms": decode_s * _MS, "flops_per_device": run.decode_total(lambda s: s.flops),
                "bandwidth": _bandwidth(run, decode_s, prefill=False, decode=True),
                "utilization": _utilization(run, prefill=False, decode=True)},
        },
        "energy": _energy(run),
        "cost": _cost(run),
        "simulation": {"steps_simulated": run.steps_simulated, "wall_s": run.wall_s},
    }


def to_json(run: Run, indent: int | None = 1) -> str:
    return json.dumps(report_dict(run), indent=indent)


# -- pieces ------------------------------------------------------------------------------------------
def _itl(run: Run) -> dict[str, Any] | None:
    itl = run.itl_s
    if not len(itl):
        return None
    ms = itl * _MS
    samples = []
    bounds = dict(run.decode_bounds)
    for c in run.decode.sampled.positions.astype(int):
        i = int(c) - run.config.prompt
        b = bounds[int(c)]
        samples.append({"position": int(c), "itl_ms": float(ms[i]), "memory_bound_ms": b.memory_s * _MS,
                        "compute_bound_ms": b.compute_s * _MS})
    return {
        "mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)), "min": float(ms.min()), "max": float(ms.max()),
        "samples": samples,
        "interpolation": {"tolerance": run.config.tolerance, "error_bound": 2 * run.config.tolerance,
                          "capped": bool(run.decode.sampled.capped or (run.draft and run.draft.sampled.capped))},
    }


def _tokens(run: Run) -> tuple[int, int]:
    """Input tokens (the prompts) and tokens decoded after the first (which prefill produces)."""
    return run.config.batch * run.config.prompt, run.config.batch * len(run.positions)


def _energy(run: Run) -> dict[str, Any] | None:
    power = run.backend.arch.power if run.backend is not None else None
    if power is None:
        return None
    e = run_energy(run, power, run.config.host_power)
    inputs, decoded = _tokens(run)
    system_w = e.total_j / run.e2e_s
    return {
        "total_j": e.total_j,
        "j_per_token": {"prefill": sum(e.prefill_j.values()) / inputs,
                        "decode": sum(e.decode_j.values()) / decoded if decoded else None},
        "avg_power_w": device_energy_j(e) / run.devices / run.e2e_s,
        "peak_power_w": e.peak_power_w,
        "idle_w": power.idle_w,
        "tdp_w": power.tdp_w,
        "clamped": e.clamped,
        "system_power_w": system_w,
        "tokens_per_s_per_w": run.config.batch * run.config.gen / run.e2e_s / system_w,
        "host_power": run.config.host_power,
        "pue": power.pue,
        "compute_dtype": run.compute_dtype,
        "by_component": e.by_component,
    }


def _cost(run: Run) -> dict[str, Any]:
    price = run.backend.arch.price if run.backend is not None else None
    per_device = run.config.usd_per_device_hour or (price.usd_per_device_hour if price else None)
    out: dict[str, Any] = {"usd_per_device_hour": per_device, "usd_per_hour": None, "usd_per_mtok_input": None,
                           "usd_per_mtok_output": None, "usd_per_mtok_blended": None}
    if per_device is None:
        return out
    usd_s = per_device * run.devices / 3600.0
    inputs, decoded = _tokens(run)
    out["usd_per_hour"] = per_device * run.devices
    out["usd_per_mtok_input"] = usd_s * run.ttft_s / inputs * 1e6
    out["usd_per_mtok_output"] = usd_s * run.decode_s / decoded * 1e6 if decoded else None
    out["usd_per_mtok_blended"] = usd_s * run.e2e_s / (inputs + run.config.batch * run.config.gen) * 1e6
    return out


COLLECTIVE_KINDS = ("all_reduce", "all_gather")  # the GPU model's collective kernels


def _time_breakdown(run: Run) -> dict[str, Any]:
    """TTFT and the mean ITL as device time (of it: collectives, where the device runs them as
    separate kernels; an RDU overlaps them with compute) and the serving engine's host time."""

    def collectives(steps_get) -> float | None:
        if run.arch_kind != "gpu":
            return None
        return steps_get(lambda s: sum(s.by_kind.get(k, 0.0) for k in COLLECTIVE_KINDS)) * _MS

    out = {"ttft": {"device": run.device_ttft_s * _MS, "collective": collectives(lambda g: _prefill_sum(run, g)),
                    "host": run.host_ttft_s * _MS}}
    n = len(run.device_itl_s)
    if n:
        out["itl_mean"] = {"device": run.device_decode_s / n * _MS,
                           "collective": collectives(lambda g: run.decode_total(g) / n),
                           "host": run.host_itl_s * _MS}
    return out


def _prefill_steps(run: Run):
    return [s for s in (run.prefill, run.draft_prefill) if s is not None]


def _prefill_sum(run: Run, get) -> float:
    return float(sum(get(s) for s in _prefill_steps(run)))


def _tiers(run: Run) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for s in _prefill_steps(run) + [s for _, s in run.decode_steps()]:
        for tier, p in s.peak_gb_s.items():
            peaks[tier] = p
    return peaks


def _bandwidth(run: Run, span_s: float, *, prefill: bool, decode: bool) -> dict[str, Any]:
    out = {}
    for tier, peak in _tiers(run).items():
        get = lambda s, t=tier: s.bytes.get(t, 0.0)
        nbytes = (_prefill_sum(run, get) if prefill else 0.0) + (run.decode_total(get) if decode else 0.0)
        achieved = nbytes / span_s / 1e9 if span_s > 0 else 0.0
        out[tier] = {"bytes": nbytes, "achieved_gb_s": achieved, "peak_gb_s": peak,
                     "fraction_of_peak": achieved / peak if peak else 0.0}
    return out


def _utilization(run: Run, *, prefill: bool, decode: bool) -> dict[str, float]:
    keys = sorted({k for s in _prefill_steps(run) for k in s.utilization})
    out = {}
    for key in keys:
        get_busy = lambda s, k=key: s.utilization.get(k, 0.0) * s.time_s
        busy = (_prefill_sum(run, get_busy) if prefill else 0.0) + (run.decode_total(get_busy) if decode else 0.0)
        span = (run.device_ttft_s if prefill else 0.0) + (run.device_decode_s if decode else 0.0)
        out[key] = busy / span if span > 0 else 0.0
    return out


def _breakdown(run: Run, attr: str) -> dict[str, float]:
    keys = sorted({k for s in _prefill_steps(run) + [s for _, s in run.decode_steps()] for k in getattr(s, attr)})
    out = {}
    for key in keys:
        get = lambda s, k=key: getattr(s, attr).get(k, 0.0)
        out[key] = (_prefill_sum(run, get) + run.decode_total(get)) * _MS
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _bounds(run: Run) -> dict[str, Any]:
    pb = run.prefill_bound
    out: dict[str, Any] = {"prefill": {"compute_ms": pb.compute_s * _MS, "memory_ms": pb.memory_s * _MS,
                                       "flops": pb.flops, "bytes": pb.bytes}}
    if run.decode_bounds:
        (c0, b0), (c1, b1) = run.decode_bounds[0], run.decode_bounds[-1]
        out["decode"] = {"positions": [c0, c1], "compute_ms": [b0.compute_s * _MS, b1.compute_s * _MS],
                         "memory_ms": [b0.memory_s * _MS, b1.memory_s * _MS],
                         "flops": [b0.flops, b1.flops], "bytes": [b0.bytes, b1.bytes],
                         "per": "output token" if run.config.spec else "decode step"}
    return out


# -- summary --------------------------------------------------------------------------------------------
def summary(run: Run, top: int = 6) -> str:
    d = report_dict(run)
    cfg = run.config
    lines = [(f"{d['model']} on {d['sockets']} x {d['arch']} ({d['device']}s), batch {cfg.batch}, "
              f"prompt {cfg.prompt}, {cfg.gen} generated, {cfg.weights} weights, {cfg.kv_dtype} KV")]
    extras = []
    if cfg.prefix_cache:
        extras.append(f"prefix cache {cfg.prefix_cache} tokens")
    if cfg.spec:
        extras.append(f"speculative decoding with {cfg.spec.describe()} ({run.tokens_per_step:.2f} tokens/step)")
    if extras:
        lines.append("  " + "; ".join(extras))
    pb = d["bounds"]["prefill"]
    lines += ["", (f"  TTFT            {d['ttft_ms']:10.2f} ms   (compute roofline {pb['compute_ms']:.2f} ms, "
                   f"memory roofline {pb['memory_ms']:.2f} ms)")]
    itl = d["itl_ms"]
    if itl:
        db = d["bounds"]["decode"]
        lines.append(f"  ITL mean        {itl['mean']:10.3f} ms   (p50 {itl['p50']:.3f}, p90 {itl['p90']:.3f}, "
                     f"p99 {itl['p99']:.3f}; memory roofline {db['memory_ms'][0]:.3f}-{db['memory_ms'][1]:.3f} ms)")
        lines.append(f"  tokens/s/user   {d['tokens_per_s_per_user']:10.1f}")
    tb = d["time_breakdown_ms"]

    def parts(x: dict) -> str:
        coll = f" of which collectives {x['collective']:.3f} ms," if x["collective"] is not None else ""
        return f"device {x['device']:.3f} ms,{coll} host {x['host']:.3f} ms"

    lines.append(f"  TTFT is {parts(tb['ttft'])}" + ("; ITL: " + parts(tb["itl_mean"]) if "itl_mean" in tb else "")
                 + ("" if cfg.host_overheads else " (--no-host-overheads)"))
    lines.append(f"  throughput      {d['throughput_tokens_per_s']:10.1f} tokens/s (batch x output tokens / e2e)")
    lines.append(f"  end to end      {d['e2e_ms']:10.2f} ms")
    lines += _energy_lines(d)
    lines.append("")
    for phase in ("prefill", "decode"):
        ph = d["phases"][phase]
        if not ph:
            continue
        bw = ", ".join(f"{t} {v['achieved_gb_s']:.0f} GB/s ({100 * v['fraction_of_peak']:.0f}% of peak)"
                       for t, v in ph["bandwidth"].items())
        ut = ", ".join(f"{k} {100 * v:.0f}%" for k, v in ph["utilization"].items())
        lines.append(f"  {phase:8s} bandwidth per {d['device']}: {bw}")
        lines.append(f"  {'':8s} busy: {ut}")
    total = sum(d["breakdown"]["by_section_ms"].values()) or 1.0
    lines += ["", "  where the time goes (all steps):"]
    for name, ms in list(d["breakdown"]["by_section_ms"].items())[:top]:
        lines.append(f"    {100 * ms / total:5.1f}%  {ms:10.2f} ms  {name}")
    kinds = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in d["breakdown"]["by_kind_ms"].items() if v > 0)
    lines.append(f"    by operator kind: {kinds}")
    sim = d["simulation"]
    if itl and itl["interpolation"]["capped"]:
        how = ("ITL interpolated between them; the step time is not smooth in the context length, so refinement "
               "stopped at the sample cap and the interpolation bound does not hold")
    else:
        how = f"ITL interpolated between them within {100 * 2 * cfg.tolerance:.1f}%"
    lines += ["", f"  ({sim['steps_simulated']} steps simulated in {sim['wall_s']:.1f} s; {how})"]
    return "\n".join(lines)


def _energy_lines(d: dict[str, Any]) -> list[str]:
    e, c = d["energy"], d["cost"]
    lines = []
    if e:
        jt = e["j_per_token"]
        dec = f", decode {jt['decode']:.4g} J/token" if jt["decode"] is not None else ""
        scope = ("" if e["host_power"] else ", no host") + (f", PUE {e['pue']:g}" if e["pue"] != 1 else "")
        lines.append(f"  energy          prefill {jt['prefill']:.4g} J/token{dec}; {e['tokens_per_s_per_w']:.3g} tokens/s per W "
                     f"({e['system_power_w']:.0f} W in all{scope})")
        label = f"power per {d['device']}"
        lines.append(f"  {label:<15s} avg {e['avg_power_w']:.0f} W, peak {e['peak_power_w']:.0f} W "
                     f"(idle {e['idle_w']:.0f} W, limit {e['tdp_w']:.0f} W)"
                     + ("; some steps held at the limit (clamped)" if e["clamped"] else ""))
        total = sum(e["by_component"].values()) or 1.0
        parts = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in e["by_component"].items() if v > 0)
        lines.append(f"  energy by part  {parts}")
    if c["usd_per_hour"] is not None:
        out = f", ${c['usd_per_mtok_output']:.3g} per Mtok output" if c["usd_per_mtok_output"] is not None else ""
        lines.append(f"  cost            ${c['usd_per_hour']:.2f}/h: ${c['usd_per_mtok_input']:.3g} per Mtok input{out}")
    return lines
