"""Decode positions: adaptive sampling, and the interpolation error bound it promises."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rduflow.simulator.gpu import GpuProgram
from rduflow.inference.graphs import load_graphs
from rduflow.inference.positions import sample


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.1, 100.0)), min_size=1, max_size=6),
    lo=st.integers(1, 500), span=st.integers(0, 3000), tol=st.sampled_from([0.001, 0.005, 0.02]),
)
def test_convex_functions_are_interpolated_within_twice_the_tolerance(pieces, lo, span, tol):
    """Step time is a sum of maxima of non-decreasing affine functions of the context: convex
    and non-decreasing. For such a function the chord error anywhere is at most twice the
    error at the midpoint, and at most the difference of the ends."""
    f = lambda c: max(a * c + b for a, b in pieces)
    hi = lo + span
    s = sample(f, lo, hi, tol, max_samples=10_000)
    xs = np.arange(lo, hi + 1)
    exact = np.array([f(int(x)) for x in xs])
    assert np.all(np.abs(s(xs) - exact) <= 2 * tol * _around(s, xs) + 1e-9)
    assert not s.capped


def _around(s, xs):
    """The larger of the two simulated values either side of each position."""
    i = np.clip(np.searchsorted(s.positions, xs), 1, len(s.positions) - 1)
    return np.maximum(s.values[i - 1], s.values[i]) if len(s.positions) > 1 else s.values[[0] * len(xs)]


def test_linear_functions_need_three_samples():
    s = sample(lambda c: 3.0 * c + 7.0, 100, 1123, 0.001)
    assert len(s.positions) == 3


def test_nearly_flat_steps_need_two_samples():
    """A short generation against a long context: the KV cache grows by a few percent."""
    s = sample(lambda c: 1000.0 + 0.001 * c, 8064, 8190, 0.005)
    assert list(s.positions) == [8064, 8190]
    # a drop between the ends is not flat growth: the midpoint is checked
    assert len(sample(lambda c: 1000.0 - 0.001 * c, 8064, 8190, 0.005).positions) == 3


def test_cap_is_reported():
    s = sample(lambda c: 2.0 + np.sin(c), 0, 1000, 1e-6, max_samples=9)
    assert s.capped and len(s.positions) == 9


def test_simulated_decode_is_interpolated_within_the_bound():
    """The bound holds for the GPU model's step time at every position of a generation."""
    g = load_graphs("tiny-llama", "bf16", "bf16")
    prog = GpuProgram(g.decode)
    f = lambda c: prog.run("a100-40gb", bindings={"batch": 4, "seq": 1, "past": c}).total_s
    tol = 0.002
    lo, hi = 16, 400
    s = sample(f, lo, hi, tol)
    xs = np.arange(lo, hi + 1)
    exact = np.array([f(int(x)) for x in xs])
    err = np.abs(s(xs) - exact)
    assert np.all(err <= 2 * tol * _around(s, xs))
    assert (err / exact).max() <= 2 * tol * 1.01  # relative, as the step time barely changes between samples
    assert len(s.positions) < len(xs) / 10  # and it needed far fewer simulations than positions


def test_compiled_rdu_decode_is_interpolated_within_the_bound():
    """The same on the RDU path, where each position is compiled (placement and all) and
    simulated: Llama 3.1 8B's layer shapes (two layers) on 8 SN40L sockets, contexts 1000 to
    2600, checked against a step simulated every 100 positions."""
    from llmcases import WIDE
    from rduflow.compiler.target import load_arch
    from rduflow.inference.backends import RduBackend

    g = load_graphs(WIDE, "bf16", "bf16")
    backend = RduBackend(load_arch("sn40l"), 8, True, "auto")
    f = lambda c: backend.step(g.decode, g.bindings(g.decode, 1, 1, c)).time_s
    tol = 0.002
    s = sample(f, 1000, 2600, tol)
    assert 2 < len(s.positions) <= 9  # the step grows by 3% over the range: it had to refine
    xs = np.arange(1000, 2601, 100)
    exact = np.array([f(int(x)) for x in xs])
    assert np.all(np.abs(s(xs) - exact) <= 2 * tol * _around(s, xs))
