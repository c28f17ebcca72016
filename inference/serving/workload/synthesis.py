"""Synthetic workloads: an arrival process (or a closed loop) and length distributions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrivals import Arrival, Stage, checked_arrival, checked_rate, checked_stages, times_for_count, times_for_stages
from .lengths import Fixed, LengthDist
from .requests import MAX_REQUESTS, Request, Workload, WorkloadError


@dataclass(frozen=True)
class SharedPrefix:
    """inference-perf's ``data.type: shared_prefix``: ``num_groups`` system prompts, each
    shared by ``num_prompts_per_group`` prompts (a question after it). A length given as an
    int is fixed. As inference-perf does (inference_perf/datagen/shared_prefix_datagen.py),
    the pool of num_groups x num_prompts_per_group prompts is drawn once (a system prompt
    length per group; a question and an output length per prompt), shuffled once, and
    request i sends prompt i mod pool size."""

    num_groups: int
    num_prompts_per_group: int
    system_prompt_len: LengthDist | int
    question_len: LengthDist | int
    output_len: LengthDist | int

    def __post_init__(self) -> None:
        for name in ("system_prompt_len", "question_len", "output_len"):
            value = getattr(self, name)
            if isinstance(value, int):
                object.__setattr__(self, name, Fixed(value))

    def describe(self) -> str:
        return (f"shared prefix {self.num_groups} groups x {self.num_prompts_per_group} prompts, "
                f"system prompt {self.system_prompt_len.describe()}, question {self.question_len.describe()}, "
                f"output {self.output_len.describe()}")


def synthesize(*, arrival: Arrival, input_len: LengthDist | None, output_len: LengthDist | None,
               requests: int | None, rate: float | None, stages: list[Stage] | None,
               concurrency: int | None, shared_prefix: SharedPrefix | None, seed: int,
               source: str | None = None, what: str = "workload") -> Workload:
    """A seeded synthetic workload. Open loop: ``rate`` with ``requests``, or ``stages``
    (``requests``, if given, caps the total). Closed loop: ``concurrency`` with ``requests``
    and no rate or stages (every arrival_s is 0). ``concurrency`` with a rate caps requests
    in flight. With ``shared_prefix`` the lengths are its own: pass no input_len/output_len.
    ``what`` names the option or file in errors."""
    if requests is not None and not 1 <= requests <= MAX_REQUESTS:
        raise WorkloadError(f"{what}: requests must be 1 to {MAX_REQUESTS:,}, got {requests}")
    if concurrency is not None and concurrency < 1:
        raise WorkloadError(f"{what}: concurrency must be >= 1 requests in flight, got {concurrency}")
    if rate is not None and stages is not None:
        raise WorkloadError(f"{what}: give a rate or stages, not both")
    rng = np.random.default_rng(seed)
    if stages is not None:
        checked_stages(stages, what)
        times = times_for_stages(checked_arrival(arrival, what), stages, rng)
        if requests is not None:
            times = times[:requests]
        if len(times) == 0:
            raise WorkloadError(f"{what}: no request arrives during the stages; raise a rate or a duration")
        pace = ", ".join(f"{s.rate:g}/s for {s.duration_s:g} s" if s.rate else f"pause {s.duration_s:g} s"
                         for s in stages)
        pace = f"{arrival.describe()} {pace}"
    elif rate is not None:
        if requests is None:
            raise WorkloadError(f"{what}: a rate with no request count never ends; give requests (or stages)")
        times = times_for_count(checked_arrival(arrival, what), checked_rate(rate, what), requests, rng)
        pace = arrival.describe(rate)
    elif concurrency is not None:
        if requests is None:
            raise WorkloadError(f"{what}: a closed loop needs a request count")
        times = np.zeros(requests)
        pace = f"closed loop, {concurrency} in flight"
    else:
        raise WorkloadError(f"{what}: give a rate, stages or a concurrency (closed loop)")
    n = len(times)
    if concurrency is not None and (rate is not None or stages is not None):
        pace += f", at most {concurrency} in flight"

    if shared_prefix is not None:
        if input_len is not None or output_len is not None:
            raise WorkloadError(f"{what}: a shared prefix sets the input and output lengths "
                                "(system_prompt_len + question_len, output_len); give no input or output length")
        inputs, outputs, prefix_ids, prefix_tokens, prompt_ids = _shared_prefix(shared_prefix, n, rng, what)
        lengths = shared_prefix.describe()
    else:
        if input_len is None or output_len is None:
            raise WorkloadError(f"{what}: give an input length and an output length")
        inputs, outputs = input_len.sample(rng, n), output_len.sample(rng, n)
        prefix_ids, prefix_tokens, prompt_ids = [None] * n, [0] * n, [None] * n
        lengths = f"input {input_len.describe()}, output {output_len.describe()}"
    reqs = tuple(Request(i, float(t), int(a), int(b), p, int(k), q)
                 for i, (t, a, b, p, k, q) in enumerate(zip(times.tolist(), inputs.tolist(), outputs.tolist(),
                                                            prefix_ids, prefix_tokens, prompt_ids)))
    return Workload(reqs, concurrency, f"{n} requests, {pace}, {lengths}", source)


def _shared_prefix(sp: SharedPrefix, n: int, rng: np.random.Generator, what: str):
    if sp.num_groups < 1 or sp.num_prompts_per_group < 1:
        raise WorkloadError(f"{what}: shared prefix num_groups and num_prompts_per_group must be >= 1, "
                            f"got {sp.num_groups} and {sp.num_prompts_per_group}")
    groups, per = sp.num_groups, sp.num_prompts_per_group
    system = sp.system_prompt_len.sample(rng, groups)
    question = np.concatenate([sp.question_len.sample(rng, per) for _ in range(groups)])
    output = np.concatenate([sp.output_len.sample(rng, per) for _ in range(groups)])
    group = np.repeat(np.arange(groups), per)
    order = rng.permutation(groups * per)
    pick = order[np.arange(n) % (groups * per)]
    g = group[pick]
    prefix = system[g]
    ids = [f"g{x}" for x in g.tolist()]
    prompts = [f"g{x}/p{y}" for x, y in zip(g.tolist(), pick.tolist())]  # the pool entry: the same whole prompt
    return prefix + question[pick], output[pick], ids, prefix.tolist(), prompts
