"""A compile in a worker started with ``spawn`` (nothing inherited): the target travels with the call."""

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from backendhelpers import SHAPES, run_and_print, tiny
from rduflow.compiler.backend import backend_pipeline, compile_model
from rduflow.compiler.passes import PassContext
from rduflow.compiler.target import load_arch
from rduflow.inference.backends import RduBackend, simulate_steps

# Not a preset: no name or file a worker could look it up by.
SMALL = load_arch("sn40l", {"pcu.count": 12, "pmu.count": 12, "grid.rows": 4, "grid.cols": 6, "agcu.count": 4})


def test_compile_in_a_spawned_worker_with_an_arch_built_in_code():
    m = tiny("tiny-llama", "decode")
    here = compile_model(m, SMALL, sockets=2, bindings=SHAPES["decode"])
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(compile_model, m, SMALL, sockets=2, bindings=SHAPES["decode"]).result()
    assert there.arch == SMALL
    assert dataclasses.replace(there.summary, compile_s=0.0) == dataclasses.replace(here.summary, compile_s=0.0)
    assert there.pipeline == here.pipeline


def test_backend_pool_simulates_steps_under_spawn():
    backend = RduBackend(SMALL, 1, kernel_looping=True, fusion="auto")
    calls = [(tiny("tiny-llama", "decode"), SHAPES["decode"]), (tiny("tiny-llama", "prefill"), SHAPES["prefill"])]
    steps = simulate_steps(backend, calls, workers=2, start_method="spawn")
    for (module, bindings), step in zip(calls, steps):
        alone = backend.step(module, bindings)
        assert (step.time_s, step.flops, step.bytes, step.by_section) == \
               (alone.time_s, alone.flops, alone.bytes, alone.by_section)


def test_passes_built_here_run_in_a_spawned_worker_with_their_context():
    """Passes hold only their options; the worker gets the target in the context it is handed."""
    passes = backend_pipeline(sockets=2, bindings=SHAPES["decode"])
    context = PassContext(target=SMALL)
    m = tiny("tiny-llama", "decode")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(run_and_print, passes, context, m.clone()).result()
    assert there == run_and_print(passes, context, m.clone())
