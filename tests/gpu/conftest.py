"""Small graphs for the GPU model's tests: tiny presets, and a few-layer model with real
layer sizes, whose decode is bound by weight reads as a full-size model's is."""

from dataclasses import replace

import pytest

from rduflow.models import get_config
from rduflow.simulator.llm.graphs import load_graphs

# Llama 3.1 8B's layer shapes, 2 layers and a small vocabulary: memory-bound decode in a
# graph that imports in a fraction of a second.
WIDE = replace(get_config("llama-3.1-8b"), name="wide-2l", num_layers=2, vocab_size=4096)


@pytest.fixture(scope="session")
def tiny():
    return load_graphs("tiny-llama", "bf16", "bf16")


@pytest.fixture(scope="session")
def wide():
    return load_graphs(WIDE, "bf16", "bf16")


@pytest.fixture(scope="session")
def wide_int4():
    return load_graphs(WIDE, "int4", "bf16")
