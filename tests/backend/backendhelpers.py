"""Helpers for the back-end tests: tiny models from the model library, inputs, comparison."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.compiler.passes.testing import random_inputs
from rduflow.ir import Module, specialize
from rduflow.models import ModelConfig, build_onnx, get_config

# Small shapes whose dims are neither 0 nor 1 where the model lets them vary.
SHAPES = {"prefill": {"batch": 2, "seq": 3}, "decode": {"batch": 2, "past": 5}}
# tiny-llama with 3 KV heads (6 query heads): they divide neither 2 nor 4 sockets, nor 2 or 4 them.
ODD_HEADS = replace(get_config("tiny-llama"), name="tiny-llama-3kv", hidden_size=48, num_heads=6, num_kv_heads=3,
                    head_dim=8)


@functools.cache
def _imported(model: str | ModelConfig, variant: str) -> Module:
    m = import_onnx(build_onnx(model, variant, weights="random"))
    PassManager(parse_pipeline("canonicalize,cse,dce")).run(m)
    return m


def tiny(model: str | ModelConfig, variant: str) -> Module:
    """A tiny model-library config, imported and canonicalized (a fresh copy)."""
    return _imported(model, variant).clone()


def inputs_for(module: Module, env: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    env = {k: v for k, v in env.items() if k in module.symbols}
    ins = random_inputs(specialize(module, env).main, env, seed)
    rng = np.random.default_rng(seed)
    for a in module.main.args:
        if a.type.dtype.is_int:  # token ids: anywhere in the vocabulary
            ins[a.name] = rng.integers(0, 100, ins[a.name].shape).astype(ins[a.name].dtype)
    return ins


def assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], rel: float = 1e-5) -> None:
    """Same outputs, each within ``rel`` of its largest magnitude."""
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        assert g.shape == w.shape and g.dtype == w.dtype, k
        scale = float(np.abs(w).max()) or 1.0
        err = float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max())
        assert err <= rel * scale, f"output '{k}': max error {err:.3g} against max magnitude {scale:.3g}"


def run_and_print(passes, context, module) -> str:
    """Run ``passes`` over ``module`` and print it. Lives here, not in a test file, so a worker
    started with ``spawn`` can import it: test modules are not importable by name."""
    from rduflow.compiler.passes import PassManager
    from rduflow.ir import print_module

    PassManager(passes, context=context).run(module)
    return print_module(module)
