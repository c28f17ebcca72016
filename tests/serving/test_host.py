"""Host overheads: the per-request cost delays a request's entry into the engine and nothing
else (benchmarks/serving_calibration.py fits request_s on that: TTFT and E2E move by exactly
request_s, the engine's steps and ITL not at all)."""

from __future__ import annotations

import numpy as np

from rduflow.inference.serving.config import EngineConfig
from rduflow.inference.serving.host import HostOverheads
from rduflow.inference.serving.serve import ServeConfig, serve
from rduflow.inference.serving.workload import SharedPrefix, Stage, parse_arrival, synthesize


def run(request_s: float):
    w = synthesize(arrival=parse_arrival("jittered"), input_len=None, output_len=None, requests=None, rate=None,
                   stages=[Stage(200.0, 0.5)], concurrency=None, shared_prefix=SharedPrefix(3, 4, 16, 40, 12),
                   seed=0)
    cfg = ServeConfig("tiny-llama", "h100-sxm", 1, engine=EngineConfig(max_num_batched_tokens=128, max_num_seqs=16),
                      host=HostOverheads(1e-3, 20e-6, request_s), use_cache=False)
    return serve(cfg, w).metrics


def test_request_overhead_shifts_ttft_and_e2e_only():
    a, b = run(0.0), run(7e-3)
    assert len(a.id) == len(b.id) == 100
    np.testing.assert_allclose(b.ttft_s - a.ttft_s, 7e-3, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.e2e_s - a.e2e_s, 7e-3, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.itl_s, a.itl_s, rtol=0, atol=1e-9)
    assert a.queue_s.max() > 0  # the load queues requests: the shift holds beyond an idle engine
