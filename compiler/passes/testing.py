"""Helpers for pass tests, TVM style: build ``before`` and ``expected``, run the pass, compare.

Comparison is on printed IR with every value name dropped, so a test does not depend on
the names a pass gives new values; graph output names, attributes, types and locations
still count. :func:`assert_same_results` checks the pass kept the module's meaning by
running the interpreter before and after on the same inputs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

import numpy as np

from rduflow.ir import Graph, Module, Value, print_module, run


def structural_text(module: Module) -> str:
    """The module's text with values numbered in order instead of named."""
    values = list(_values(module))
    names = [v.name for v in values]
    try:
        for v in values:
            v.name = None
        return print_module(module)
    finally:
        for v, n in zip(values, names):
            v.name = n


def assert_structural_equal(actual: Module, expected: Module) -> None:
    a, e = structural_text(actual), structural_text(expected)
    if a != e:
        diff = "\n".join(difflib.unified_diff(e.splitlines(), a.splitlines(), "expected", "actual", lineterm=""))
        raise AssertionError(f"modules differ:\n{diff}")


def random_inputs(graph: Graph, env: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays for the graph's arguments with symbols bound by ``env``: normal floats, small ints, random bools."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, a in enumerate(graph.args):
        shape = tuple(int(d.evaluate(env)) for d in a.type.shape)
        dt = a.type.dtype
        if dt.is_float:
            x = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.is_int:
            x = rng.integers(0, 8, shape).astype(dt.numpy)
        else:
            x = rng.random(shape) < 0.5
        out[a.name or str(i)] = x
    return out


def assert_same_results(before: Module, after: Module, env: Mapping[str, int], seeds: range = range(3)) -> None:
    """Both modules give bit-equal outputs (NaN equal to NaN, -0.0 to 0.0) on random inputs."""
    for seed in seeds:
        inputs = random_inputs(before.main, env, seed)
        want, got = run(before, inputs), run(after, inputs)
        assert list(got) == list(want), f"output names differ: {list(got)} vs {list(want)}"
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"output '{k}', seed {seed}")


def _values(module: Module) -> Iterator[Value]:
    def graph_values(g: Graph) -> Iterator[Value]:
        yield from g.args
        for op in g.ops:
            yield from op.results
            for r in op.regions:
                yield from graph_values(r)

    for g in module.graphs.values():
        yield from graph_values(g)
