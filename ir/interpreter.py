"""Execute a graph on numpy inputs with each op's reference semantics.

Symbol values (``batch``, ``seq``, ``past``) are bound from the input arrays' shapes,
solving dims such as ``past+seq`` once the other symbols are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from .core import Graph, Module, Value
from .dims import Dim
from .dtypes import DType
from .errors import RduflowError
from .opdef import EvalContext


class InterpreterError(RduflowError, RuntimeError):
    pass


def run(module: Module, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray], graph: str | None = None) -> dict[str, np.ndarray]:
    """Run ``module``'s graph (``main`` by default) and return outputs by name.

    ``inputs`` maps argument names to arrays (or lists them in argument order). Outputs are
    keyed by their ``as "name"``, else the value's name, else their position; a name that
    would repeat is replaced by the position.
    """
    if graph is not None and graph not in module.graphs:
        raise InterpreterError(f"module has no graph @{graph} (it has {', '.join('@' + n for n in module.graphs)})")
    g = module.graphs[graph] if graph else module.main
    if not isinstance(inputs, Mapping):
        if len(inputs) != len(g.args):
            raise InterpreterError(f"graph @{g.name} takes {len(g.args)} inputs, {len(inputs)} given")
        inputs = {a.name or str(i): x for i, (a, x) in enumerate(zip(g.args, inputs))}
    arrays = []
    for i, a in enumerate(g.args):
        key = a.name or str(i)
        if key not in inputs:
            raise InterpreterError(f"missing input '{key}' ({a.type})")
        arrays.append(np.asarray(inputs[key]))
    extra = set(inputs) - {a.name or str(i) for i, a in enumerate(g.args)}
    if extra:
        raise InterpreterError(f"unknown input(s) {', '.join(sorted(extra))}; graph takes "
                               f"{', '.join(a.name or '?' for a in g.args)}")
    env = bind_symbols(g.args, arrays)
    cache: dict[str, np.ndarray] = {}

    def load_weight(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = module.weights[name].load(module.base_dir)
        return cache[name]

    outs = run_graph(g, arrays, env, load_weight)
    result: dict[str, np.ndarray] = {}
    for i, (v, x) in enumerate(zip(g.outputs, outs)):
        name = g.output_names[i] if i < len(g.output_names) and g.output_names[i] else (v.name or str(i))
        result[str(i) if name in result else name] = x
    return result


def run_graph(g: Graph, inputs: Sequence[np.ndarray], env: dict[str, int], load_weight=None) -> list[np.ndarray]:
    values: dict[Value, np.ndarray] = {}
    for a, x in zip(g.args, inputs):
        _check(a, x, env, "input")
        values[a] = x

    def run_region(region: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
        return run_graph(region, ins, env, load_weight)

    for op in g.ops:
        for i, v in enumerate(op.operands):
            if v not in values:
                raise InterpreterError(f"{op.where()}: operand #{i} %{v.name or '?'} has no value here "
                                       "(run verify_module to find out why)")
        ctx = EvalContext(env=env, load_weight=load_weight, run_region=run_region, op=op)
        try:
            outs = op.opdef.evaluate([values[v] for v in op.operands], op.attrs, ctx)
        except InterpreterError:
            raise
        except Exception as e:  # numpy raises many kinds; say which op failed
            raise InterpreterError(f"{op.where()}: evaluation failed: {e}") from e
        if len(outs) != len(op.results):
            raise InterpreterError(f"{op.where()}: evaluation gave {len(outs)} result(s) for {len(op.results)}")
        for r, x in zip(op.results, outs):
            if r.type.symbols - env.keys():  # a size known only once computed (nonzero's count)
                env.update({k: v for k, v in bind_symbols([r], [np.asarray(x)]).items() if k not in env})
            _check(r, x, env, "result")
            values[r] = x
    for i, v in enumerate(g.outputs):
        if v not in values:
            raise InterpreterError(f"@{g.name}: output #{i} %{v.name or '?'} has no value (run verify_module)")
    return [values[v] for v in g.outputs]


def _check(v: Value, x: np.ndarray, env: dict[str, int], what: str) -> None:
    want = tuple(int(d.evaluate(env)) for d in v.type.shape)
    if tuple(x.shape) != want or (v.type.dtype is not DType.string and x.dtype != v.type.dtype.numpy):
        where = v.defining_op.where() if v.defining_op else f"%{v.name}"
        raise InterpreterError(f"{where}: {what} is {x.dtype}{list(x.shape)}, type says {v.type} = {list(want)}")


def bind_symbols(args: Sequence[Value], arrays: Sequence[np.ndarray]) -> dict[str, int]:
    """Solve the arguments' symbolic dims from the arrays' shapes."""
    pending: list[tuple[Dim, int, str]] = []
    for a, x in zip(args, arrays):
        if x.ndim != a.type.rank:
            raise InterpreterError(f"input %{a.name} has rank {x.ndim}, type {a.type} has rank {a.type.rank}")
        pending.extend((d, n, a.name or "?") for d, n in zip(a.type.shape, x.shape))
    env: dict[str, int] = {}
    progress = True
    while progress:
        progress = False
        for d, n, name in pending:
            d2 = d.subs(env)
            unknown = d2.symbols
            if len(unknown) == 1:
                (s,) = unknown
                terms = d2.terms
                if set(terms) <= {(s,), ()}:  # linear in s: c*s + k = n
                    val = (Fraction(n) - terms.get((), 0)) / terms[(s,)]
                    if val.denominator != 1 or val < 0:
                        raise InterpreterError(f"input %{name}: no integer {s} gives {d} = {n}")
                    env[s] = int(val)
                    progress = True
    for d, n, name in pending:
        if d.symbols - set(env):
            raise InterpreterError(f"input %{name}: cannot determine {', '.join(sorted(d.symbols - set(env)))} from {d}")
        if d.evaluate(env) != n:
            raise InterpreterError(f"input %{name}: dim {d} is {d.evaluate(env)} by the other inputs, array has {n}")
    return env
