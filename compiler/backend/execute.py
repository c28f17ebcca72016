"""Executing compiled programs for values: every socket's program, in lockstep, with real collectives.

The same program runs on every socket (SPMD). :class:`Lockstep` evaluates it op by op for
all sockets together, so a collective sees every socket's operand: ``all_reduce`` sums them,
``all_gather`` concatenates them in socket order, ``reduce_scatter`` sums and hands each
socket its piece. Other IR ops run on each socket's own values with their reference
semantics (``spmd.shard`` reads the socket's index from ``env["$socket"]``).

:func:`execute` runs a module at any stage of the back end: a graph-level module (after
``shard``, ``fuse`` or ``section``) takes the model's whole inputs, gives each socket its
piece (``spmd.args``) and puts the whole outputs back together (``spmd.outputs``); a placed
program additionally runs its sections in order, each ``repeat`` times, through the
sockets' memories (:mod:`.placed_run`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from rduflow.ir import DType, Graph, InterpreterError, Module, Operation, Trait, Value
from rduflow.ir.interpreter import bind_symbols
from rduflow.ir.interpreter import run_graph as run_one_socket
from rduflow.ir.opdef import EvalContext
from rduflow.ir.program import SPMD_ARGS, SPMD_OUTPUTS

from .spmd import sockets_of, spreads

PerSocket = list[np.ndarray]


class Lockstep:
    """Evaluates graphs for ``sockets`` sockets at once."""

    def __init__(self, module: Module, sockets: int, env: dict[str, int]):
        self.module, self.n = module, sockets
        self.envs = [{**env, "$socket": s} for s in range(sockets)]
        self.weights: dict[str, np.ndarray] = {}

    def load_weight(self, name: str) -> np.ndarray:
        if name not in self.weights:
            self.weights[name] = self.module.weights[name].load(self.module.base_dir)
        return self.weights[name]

    def run_graph(self, g: Graph, inputs: Sequence[PerSocket]) -> list[PerSocket]:
        values: dict[Value, PerSocket] = dict(zip(g.args, inputs))
        for op in g.ops:
            outs = self.eval(op, [values[v] for v in op.operands])
            for r, x in zip(op.results, outs):
                _check(op, r, x)
                values[r] = x
        return [values[v] for v in g.outputs]

    def eval(self, op: Operation, ins: list[PerSocket]) -> list[PerSocket]:
        if op.opdef.has_trait(Trait.INLINE_REGION):
            return self.run_graph(op.regions[0], ins)
        if op.opname == "placed.collective":
            return [collective(op, ins[0], self.n)]
        per_socket = []
        for s, env in enumerate(self.envs):
            def region(g: Graph, xs: list[np.ndarray], env=env) -> list[np.ndarray]:
                return run_one_socket(g, xs, env, self.load_weight)

            ctx = EvalContext(env=env, load_weight=self.load_weight, run_region=region, op=op)
            try:
                per_socket.append(op.opdef.evaluate([x[s] for x in ins], op.attrs, ctx))
            except InterpreterError:
                raise
            except Exception as e:  # numpy raises many kinds; say which op failed
                raise InterpreterError(f"{op.where()}: evaluation failed on socket {s}: {e}") from e
        return [list(xs) for xs in zip(*per_socket)] if per_socket and per_socket[0] else [[] for _ in op.results]


def collective(op: Operation, xs: PerSocket, n: int) -> PerSocket:
    kind, axis = op.attrs["kind"], op.attrs["axis"]
    if op.attrs["group"] != n:
        raise InterpreterError(f"{op.where()}: a collective over {op.attrs['group']} sockets in a program run on {n}")
    if kind == "all_gather":
        whole = np.concatenate(xs, axis=axis)
        return [whole] * n
    # Sum in f64 in socket order, so the result does not depend on how sockets are paired.
    wide = [x if x.dtype.kind in "iub" else x.astype(np.float64) for x in xs]
    total = np.asarray(sum(wide[1:], wide[0])).astype(xs[0].dtype)
    if kind == "all_reduce":
        return [total] * n
    return [np.ascontiguousarray(p) for p in np.split(total, n, axis=axis)]


def _check(op: Operation, v: Value, xs: PerSocket) -> None:
    want = v.type.concrete_shape()
    for s, x in enumerate(xs):
        if (want is not None and tuple(x.shape) != want) or (
                v.type.dtype is not DType.string and x.dtype != v.type.dtype.numpy):
            raise InterpreterError(f"{op.where()}: socket {s} computed {x.dtype}{list(x.shape)}, type says {v.type}")


def execute(module: Module, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a compiled module on the model's (whole) inputs; returns its whole outputs by name."""
    if any(op.opname == "placed.section" for op in module.main.ops):
        from .placed_run import run_placed

        return run_placed(module, inputs)
    g = module.main
    n = sockets_of(module)
    arrays = ordered_inputs(g, inputs)
    args = [[sp.part(x, s, n) for s in range(n)] for sp, x in zip(spreads(module, SPMD_ARGS, len(g.args)), arrays)]
    env = bind_symbols(g.args, [a[0] for a in args])
    outs = Lockstep(module, n, env).run_graph(g, args)
    return name_outputs(g, [sp.assemble(o) for sp, o in zip(spreads(module, SPMD_OUTPUTS, len(g.outputs)), outs)])


def ordered_inputs(g: Graph, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    missing = [a.name for a in g.args if a.name not in inputs]
    if missing:
        raise InterpreterError(f"missing input(s) {', '.join(map(str, missing))}")
    extra = sorted(set(inputs) - {a.name for a in g.args})
    if extra:
        raise InterpreterError(f"unknown input(s) {', '.join(extra)}; the model takes {', '.join(str(a.name) for a in g.args)}")
    return [np.asarray(inputs[a.name]) for a in g.args]


def name_outputs(g: Graph, outs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs keyed as ``ir.run`` keys them (output name, else value name, else position)."""
    result: dict[str, np.ndarray] = {}
    for i, (v, x) in enumerate(zip(g.outputs, outs)):
        name = g.output_names[i] if i < len(g.output_names) and g.output_names[i] else (v.name or str(i))
        result[str(i) if name in result else name] = x
    return result
