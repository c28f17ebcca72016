"""Workload files: a spec (``.yaml``/``.yml``/``.toml``, rduflow's schema or an inference-perf
config as it is) or a trace (``.csv``/``.jsonl``). The schema is in docs/serving-workloads.md;
every error names the file and the field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rduflow.compiler.loading import read_mapping

from .arrivals import Arrival, Stage
from .lengths import Fixed, LengthDist, LogNormal, Normal, Uniform, parse_length
from .requests import Workload, WorkloadError
from .synthesis import SharedPrefix, synthesize
from .trace import load_trace

SPEC_SUFFIXES = (".yaml", ".yml", ".toml")
TRACE_SUFFIXES = (".csv", ".jsonl")
SPEC_KEYS = {"arrival", "stages", "requests", "input_len", "output_len", "shared_prefix", "seed"}
ARRIVAL_TYPES = ("poisson", "gamma", "constant", "jittered", "closed_loop")


def load_workload(path: str, *, seed: int = 0) -> Workload:
    """The workload a file describes; ``seed`` draws a spec's randomness unless it gives its own."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TRACE_SUFFIXES:
        return load_trace(p)
    if suffix not in SPEC_SUFFIXES:
        raise WorkloadError(f"{path}: a workload file is a spec ({', '.join(SPEC_SUFFIXES)}) "
                            f"or a trace ({', '.join(TRACE_SUFFIXES)}); cannot tell what {suffix or 'no suffix'!r} is")
    doc = _read_mapping(p)
    if "load" in doc or "data" in doc:
        return _from_inference_perf(doc, str(p), p.parent, seed)
    return _from_spec(doc, str(p), p.parent, seed)


def _read_mapping(p: Path) -> dict:
    return read_mapping(p, str(p), WorkloadError, "workload file")


# ---- rduflow's schema ------------------------------------------------------------------


def _from_spec(doc: dict, name: str, base: Path, seed: int) -> Workload:
    _known(doc, SPEC_KEYS, name, "")
    arrival_doc = _mapping(doc.get("arrival", {"type": "poisson"}), name, "arrival")
    if "type" not in arrival_doc:
        raise WorkloadError(f"{name}: arrival.type: missing; use one of {', '.join(ARRIVAL_TYPES)}")
    kind = arrival_doc["type"]
    if kind not in ARRIVAL_TYPES:
        raise WorkloadError(f"{name}: arrival.type: unknown arrival type {kind!r}; use one of {', '.join(ARRIVAL_TYPES)}")
    _known(arrival_doc, {"type", "rate", "concurrency"} | ({"cv"} if kind == "gamma" else set()), name, "arrival.")
    rate = _number(arrival_doc, "rate", name, "arrival.rate") if "rate" in arrival_doc else None
    concurrency = _integer(arrival_doc, "concurrency", name, "arrival.concurrency", 1) if "concurrency" in arrival_doc else None
    stages = None
    if "stages" in doc:
        items = doc["stages"]
        if not isinstance(items, list):
            raise WorkloadError(f"{name}: stages: a list of {{rate, duration_s}}, got {type(items).__name__}")
        stages = []
        for i, item in enumerate(items):
            where = f"stages[{i}]"
            _known(_mapping(item, name, where), {"rate", "duration_s"}, name, where + ".", required=("rate", "duration_s"))
            stages.append(Stage(_number(item, "rate", name, where + ".rate"), _number(item, "duration_s", name, where + ".duration_s")))
    if kind == "closed_loop":
        if concurrency is None:
            raise WorkloadError(f"{name}: arrival.concurrency: a closed loop needs the number of requests in flight")
        if rate is not None or stages is not None:
            raise WorkloadError(f"{name}: arrival: a closed loop sends a request when one finishes; give no rate or stages")
        arrival = Arrival("poisson")  # unused: nothing arrives on a clock
    else:
        if kind == "gamma" and "cv" not in arrival_doc:
            raise WorkloadError(f"{name}: arrival.cv: a gamma arrival needs its coefficient of variation")
        cv = _number(arrival_doc, "cv", name, "arrival.cv") if kind == "gamma" else 1.0
        if rate is None and stages is None:
            raise WorkloadError(f"{name}: arrival.rate: give a rate (requests/s) or stages")
        arrival = Arrival(kind, cv)
    requests = _integer(doc, "requests", name, "requests", 1) if "requests" in doc else None
    shared = _shared_prefix(doc["shared_prefix"], name, "shared_prefix.", base) if "shared_prefix" in doc else None
    if shared is not None:
        for key in ("input_len", "output_len"):
            if key in doc:
                raise WorkloadError(f"{name}: {key}: a shared_prefix sets the lengths (system_prompt_len + question_len, "
                                    "output_len); remove it")
        input_len = output_len = None
    else:
        for key in ("input_len", "output_len"):
            if key not in doc:
                raise WorkloadError(f"{name}: {key}: missing; give a length (e.g. 512 or \"uniform:128,1024\")")
        input_len = _length(doc["input_len"], name, "input_len", base)
        output_len = _length(doc["output_len"], name, "output_len", base)
    if "seed" in doc:
        seed = _integer(doc, "seed", name, "seed", 0)
    return synthesize(arrival=arrival, input_len=input_len, output_len=output_len, requests=requests, rate=rate,
                      stages=stages, concurrency=concurrency, shared_prefix=shared, seed=seed, source=name, what=name)


# ---- inference-perf configs ------------------------------------------------------------
# inference_perf/config/loadgen/config.py (LoadConfig) and config/datagen/config.py (DataConfig,
# SharedPrefix); config/common.py (Distribution). Other top-level sections (api, server,
# metrics, report, storage, tokenizer ...) describe the client and the server, not the load.

IP_LOAD_KEYS = {"type", "interval", "stages", "sweep", "num_workers", "worker_max_concurrency",
                "worker_max_tcp_connections", "trace", "circuit_breakers", "request_timeout", "request_retries",
                "request_retry_backoff_sec", "stage_teardown_grace_seconds", "lora_traffic_split", "base_seed"}
IP_DATA_KEYS = {"type", "path", "input_distribution", "output_distribution", "shared_prefix", "multimodal", "trace",
                "otel_trace_replay", "conversation_replay", "sharegpt4video"}
IP_SHARED_KEYS = {"num_groups", "num_unique_system_prompts", "num_prompts_per_group", "num_users_per_system_prompt",
                  "system_prompt_len", "question_len", "output_len", "seed", "question_distribution",
                  "output_distribution", "enable_multi_turn_chat", "multimodal"}
# inference-perf's Distribution defaults (config/common.py).
IP_DIST_DEFAULTS = {"min": 10, "max": 1024, "mean": 512.0, "std_dev": 200.0, "type": "normal"}
IP_ARRIVALS = {"constant": "jittered", "poisson": "poisson"}


def _from_inference_perf(doc: dict, name: str, base: Path, seed: int) -> Workload:
    load = _mapping(doc.get("load", {}), name, "load")
    data = _mapping(doc.get("data", {}), name, "data")
    _known(load, IP_LOAD_KEYS, name, "load.")
    _known(data, IP_DATA_KEYS, name, "data.")
    kind = load.get("type", "constant")
    if load.get("sweep") is not None:
        raise WorkloadError(f"{name}: load.sweep: a sweep probes a live server's saturation; "
                            "give the stages (or use rduflow serve --max-rate)")
    stage_docs = load.get("stages", [])
    if not isinstance(stage_docs, list) or not stage_docs:
        raise WorkloadError(f"{name}: load.stages: give at least one stage")
    concurrency, requests, stages = None, None, None
    if kind == "concurrent":
        if len(stage_docs) != 1:
            raise WorkloadError(f"{name}: load.stages: a concurrent load is simulated one stage at a time; "
                                f"this file has {len(stage_docs)}")
        where = "load.stages[0]"
        st = _mapping(stage_docs[0], name, where)
        _known(st, {"num_requests", "concurrency_level", "rate", "duration"}, name, where + ".",
               required=("num_requests", "concurrency_level"))
        requests = _integer(st, "num_requests", name, where + ".num_requests", 1)
        concurrency = _integer(st, "concurrency_level", name, where + ".concurrency_level", 1)
        arrival = Arrival("poisson")  # unused in a closed loop
    elif kind in IP_ARRIVALS:
        arrival = Arrival(IP_ARRIVALS[kind])
        interval = _number(load, "interval", name, "load.interval", least=0.0) if "interval" in load else 1.0
        stages = []
        for i, st in enumerate(stage_docs):
            where = f"load.stages[{i}]"
            _known(_mapping(st, name, where), {"rate", "duration", "num_requests", "concurrency_level"}, name,
                   where + ".", required=("rate", "duration"))
            for key in ("num_requests", "concurrency_level"):
                if st.get(key) is not None:
                    raise WorkloadError(f"{name}: {where}.{key}: not used by a {kind} load (inference-perf refuses it too)")
            if i and interval > 0:
                stages.append(Stage(0.0, interval))  # inference-perf waits `interval` s between stages
            stages.append(Stage(_number(st, "rate", name, where + ".rate"), _number(st, "duration", name, where + ".duration")))
    else:
        raise WorkloadError(f"{name}: load.type: {kind!r} is not simulated; use constant, poisson or concurrent "
                            "(replay a trace as a .csv or .jsonl workload)")
    dtype = data.get("type", "mock")
    shared, input_len, output_len = None, None, None
    if dtype == "shared_prefix":
        if "shared_prefix" not in data:
            raise WorkloadError(f"{name}: data.shared_prefix: missing; data.type shared_prefix needs it")
        shared = _ip_shared_prefix(data["shared_prefix"], name, base)
    elif dtype in ("random", "synthetic"):
        for key in ("input_distribution", "output_distribution"):
            if data.get(key) is None:
                raise WorkloadError(f"{name}: data.{key}: missing; data.type {dtype} needs it")
        input_len = _length(data["input_distribution"], name, "data.input_distribution", base)
        output_len = _length(data["output_distribution"], name, "data.output_distribution", base)
    else:
        raise WorkloadError(f"{name}: data.type: {dtype!r} needs a dataset and a tokenizer; rduflow simulates "
                            "shared_prefix, random and synthetic (or give lengths in rduflow's own schema)")
    return synthesize(arrival=arrival, input_len=input_len, output_len=output_len, requests=requests, rate=None,
                      stages=stages, concurrency=concurrency, shared_prefix=shared, seed=seed, source=name, what=name)


def _ip_shared_prefix(value: Any, name: str, base: Path) -> SharedPrefix:
    where = "data.shared_prefix."
    sp = _mapping(value, name, where[:-1])
    _known(sp, IP_SHARED_KEYS, name, where)
    if sp.get("enable_multi_turn_chat"):
        raise WorkloadError(f"{name}: {where}enable_multi_turn_chat: multi-turn sessions are not simulated")
    if sp.get("multimodal") is not None:
        raise WorkloadError(f"{name}: {where}multimodal: multimodal prompts are not simulated")
    doc = dict(sp)
    for legacy, key in (("question_distribution", "question_len"), ("output_distribution", "output_len")):
        if doc.get(legacy) is not None:  # inference-perf's legacy form; it refuses both at once
            if isinstance(doc.get(key), dict):
                raise WorkloadError(f"{name}: {where}{legacy}: give {key} as a distribution or {legacy}, not both")
            doc[key] = doc.pop(legacy)
    for alias, key in (("num_unique_system_prompts", "num_groups"), ("num_users_per_system_prompt", "num_prompts_per_group")):
        if alias in doc:
            if key in doc:
                raise WorkloadError(f"{name}: {where}{alias}: the same as {key}; give one")
            doc[key] = doc.pop(alias)
    doc = {k: v for k, v in doc.items() if k not in ("seed", "enable_multi_turn_chat", "multimodal",
                                                      "question_distribution", "output_distribution")}
    # inference-perf's defaults (config/datagen/config.py, SharedPrefix)
    doc = {"num_groups": 10, "num_prompts_per_group": 10, "system_prompt_len": 100, "question_len": 50,
           "output_len": 50, **doc}
    return _shared_prefix(doc, name, where, base)


# ---- shared pieces ---------------------------------------------------------------------


def _shared_prefix(value: Any, name: str, where: str, base: Path) -> SharedPrefix:
    sp = _mapping(value, name, where[:-1])
    keys = ("num_groups", "num_prompts_per_group", "system_prompt_len", "question_len", "output_len")
    _known(sp, set(keys), name, where, required=keys)
    return SharedPrefix(
        _integer(sp, "num_groups", name, where + "num_groups", 1),
        _integer(sp, "num_prompts_per_group", name, where + "num_prompts_per_group", 1),
        *(_length(sp[k], name, where + k, base) for k in keys[2:]))


def _length(value: Any, name: str, where: str, base: Path) -> LengthDist:
    """An int, a length text (``uniform:128,1024``) or an inference-perf Distribution mapping."""
    what = f"{name}: {where}"
    if isinstance(value, bool):
        raise WorkloadError(f"{what}: a length is a token count, a text or a distribution, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise WorkloadError(f"{what}: token counts must be >= 1, got {value}")
        return Fixed(value)
    if isinstance(value, str):
        return parse_length(value, what, base=base)
    if isinstance(value, dict):
        return _ip_distribution(value, name, where)
    raise WorkloadError(f"{what}: a length is a token count, a text (e.g. \"uniform:128,1024\") or a mapping "
                        f"{{type, min, max, mean, std_dev}}, got {type(value).__name__}")


def _ip_distribution(d: dict, name: str, where: str) -> LengthDist:
    """inference-perf's Distribution (config/common.py), with its defaults; drawn as its
    sample_from_distribution does: clipped to [min, max] and rounded (fixed: int(mean))."""
    _known(d, {"type", "min", "max", "mean", "std_dev", "variance", "total_count", "skew"}, name, where + ".")
    full = {**IP_DIST_DEFAULTS, **d}
    kind = full["type"]
    low = _integer(full, "min", name, where + ".min", 1)
    high = _integer(full, "max", name, where + ".max", 1)
    mean = _number(full, "mean", name, where + ".mean")
    if "variance" in d:
        if "std_dev" in d:
            raise WorkloadError(f"{name}: {where}.variance: give std_dev or variance, not both")
        std = math.sqrt(_number(full, "variance", name, where + ".variance", least=0.0))
    else:
        std = _number(full, "std_dev", name, where + ".std_dev", least=0.0)
    if low > high:
        raise WorkloadError(f"{name}: {where}: min ({low}) is above max ({high})")
    if kind == "fixed":
        if int(mean) < 1:
            raise WorkloadError(f"{name}: {where}.mean: token counts must be >= 1, got {mean:g}")
        return Fixed(int(mean))
    if kind == "uniform":
        return Uniform(low, high)
    if kind == "normal":
        return Normal(mean, std, low, high)
    if kind == "lognormal":
        return LogNormal(mean, std, low, high)
    raise WorkloadError(f"{name}: {where}.type: {kind!r} is not simulated; use fixed, uniform, normal or lognormal")


def _mapping(value: Any, name: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise WorkloadError(f"{name}: {where}: expected a mapping of fields, got {type(value).__name__}")
    return value


def _known(d: dict, allowed: set, name: str, prefix: str, required: tuple = ()) -> None:
    for key in d:
        if key not in allowed:
            raise WorkloadError(f"{name}: {prefix}{key}: unknown field; known here: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in d:
            raise WorkloadError(f"{name}: {prefix}{key}: missing")


def _number(d: dict, key: str, name: str, where: str, least: float | None = None) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise WorkloadError(f"{name}: {where}: must be a number, got {v!r}")
    if least is not None and v < least:
        raise WorkloadError(f"{name}: {where}: must be >= {least:g}, got {v:g}")
    return float(v)


def _integer(d: dict, key: str, name: str, where: str, least: int) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise WorkloadError(f"{name}: {where}: must be an integer >= {least}, got {v!r}")
    if v < least:
        raise WorkloadError(f"{name}: {where}: must be an integer >= {least}, got {v}")
    return v
