"""Graphs for the GPU model's tests: a tiny preset, and a two-layer model with Llama 3.1 8B's
layer sizes (tests/llm/llmcases.py), whose decode is bound by weight reads as a full-size
model's is."""

import pytest
from llmcases import WIDE
from rduflow.inference.graphs import load_graphs


@pytest.fixture(scope="session")
def tiny():
    return load_graphs("tiny-llama", "bf16", "bf16")


@pytest.fixture(scope="session")
def wide():
    return load_graphs(WIDE, "bf16", "bf16")


@pytest.fixture(scope="session")
def wide_int4():
    return load_graphs(WIDE, "int4", "bf16")
