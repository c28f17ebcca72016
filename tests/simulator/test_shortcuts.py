"""The simulator's shortcuts (looped kernels extrapolated once their time per call is
periodic, streams coarsened to at most ``max_tiles`` tiles) against the full-resolution
simulation (``exact=True``: every call and every tile) of compiled LLM steps: within 1% of
the step time, and the same bottleneck named for every section (issue 12)."""

from __future__ import annotations

import dataclasses

import pytest

from rduflow.compiler.backend import compile_model
from rduflow.inference.graphs import load_graphs
from rduflow.models import get_config
from rduflow.simulator import simulate

# (model, layers, phase, batch, tokens per step, past, sockets): small enough to simulate
# every call and tile, and covering the loop shortcut (more than runner.LOOP_EXACT layers).
CASES = [
    ("llama-3.2-1b", 2, "prefill", 1, 256, 0, 1),
    ("llama-3.2-1b", 2, "prefill", 2, 512, 0, 16),
    ("llama-3.2-1b", 1, "prefill", 1, 4096, 0, 8),
    ("llama-3.2-1b", 16, "decode", 64, 1, 1024, 4),
    ("llama-3.1-8b", 12, "decode", 1, 1, 4096, 8),
]


@pytest.mark.parametrize("model,layers,phase,batch,seq,past,sockets", CASES)
def test_shortcuts_stay_within_one_percent(model, layers, phase, batch, seq, past, sockets):
    graphs = load_graphs(dataclasses.replace(get_config(model), num_layers=layers), "bf16", "bf16")
    module = graphs.prefill if phase == "prefill" else graphs.decode
    placed = compile_model(module, "sn40l", sockets=sockets,
                           bindings=graphs.bindings(module, batch, seq, past)).placed
    fast = simulate(placed, "sn40l", sockets=sockets)
    full = simulate(placed, "sn40l", sockets=sockets, exact=True)
    assert fast.total_s == pytest.approx(full.total_s, rel=0.01)
    assert [s.bottleneck for s in fast.sections] == [s.bottleneck for s in full.sections]
    assert [s.calls for s in fast.sections] == [s.calls for s in full.sections]
