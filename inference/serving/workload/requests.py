"""What the engine serves: a workload is a tuple of requests, each with its arrival and lengths."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import LlmSimError

# A bound that keeps a typo (--requests 1e9) from filling memory: ten million requests are
# ~1 GB as Python objects, beyond any serving run the simulator is meant to answer.
MAX_REQUESTS = 10_000_000


class WorkloadError(LlmSimError):
    """A workload rduflow cannot build: the message names the file (or option) and field."""


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float  # open loop: when it is sent. Closed loop: 0.0 (the engine sends it)
    input_tokens: int  # >= 1
    output_tokens: int  # >= 1
    prefix_id: str | None = None  # requests with the same prefix_id share their first prefix_tokens tokens
    prefix_tokens: int = 0  # 0 <= prefix_tokens <= input_tokens
    # Requests with the same prompt_id send the same whole prompt (a load generator cycling
    # through a pool of prompts): their KV blocks match to the last full one.
    prompt_id: str | None = None
    model: str | None = None  # with several models on the devices (serve --mix): which one serves it


@dataclass(frozen=True)
class Workload:
    requests: tuple[Request, ...]  # sorted by arrival_s, ids 0..n-1 in that order
    # Requests in flight at once; the next is sent when one finishes (and not before its
    # arrival_s). With every arrival_s 0.0 this is a closed loop; with arrival times it is
    # vLLM's --max-concurrency on top of --request-rate. None: no cap (open loop).
    concurrency: int | None = None
    description: str = ""  # one line, e.g. "1000 requests, Poisson 4/s, input 512, output 256"
    source: str | None = None  # the file it came from, if any
