"""Workloads for the serving simulator: synthetic request streams, spec files and traces.

See docs/serving-workloads.md for the texts, the file schema and the mapping from vLLM's
benchmark, inference-perf and Vidur.
"""

from .arrivals import Arrival, Stage, parse_arrival, parse_stages
from .lengths import LengthDist, parse_length
from .mix import assign_models, parse_mix
from .requests import MAX_REQUESTS, Request, Workload, WorkloadError
from .spec import load_workload
from .synthesis import SharedPrefix, synthesize

__all__ = [
    "MAX_REQUESTS", "Arrival", "LengthDist", "Request", "SharedPrefix", "Stage", "Workload", "WorkloadError",
    "assign_models", "load_workload", "parse_arrival", "parse_length", "parse_mix", "parse_stages", "synthesize",
]
