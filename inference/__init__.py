"""LLM inference on the simulators: prefill and decode of a model, serving features, metrics.

    from rduflow.inference import RunConfig, SpecDecode, simulate_llm, report_dict
    run = simulate_llm(RunConfig("llama-3.1-8b", "h100-sxm", devices=1, prompt=1024, gen=128))
    report_dict(run)["itl_ms"]["mean"]

docs/report-schema.md defines every field of the report; docs/validation.md compares runs
with published measurements.
"""

from .config import KV_DTYPES, WEIGHT_DTYPES, RunConfig, SpecDecode
from .errors import LlmSimError
from .result import SCHEMA, report_dict, summary, to_json
from .run import Run, simulate_llm

__all__ = [
           "KV_DTYPES",
           "SCHEMA",
           "WEIGHT_DTYPES",
           "LlmSimError",
           "Run",
           "RunConfig",
           "SpecDecode",
           "report_dict",
           "simulate_llm",
           "summary",
           "to_json",
]
