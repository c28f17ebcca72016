"""Substituting dimension symbols: one symbolic graph, many concrete ones.

``specialize(m, {"seq": 1})`` turns the prefill graph ``f32[batch, past+seq, 64]`` into the
decode step ``f32[batch, past+1, 64]``; binding every symbol gives a fully concrete graph.
The input module is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import Graph, Module, Operation, Value
from .dims import Dim, DimError, DimLike
from .types import TensorType
from .weights import Weight


def specialize(module: Module, env: Mapping[str, DimLike]) -> Module:
    """A new module with the symbols in ``env`` replaced in every type, Dim-valued attribute
    (module attributes included) and weight type.

    Values may be non-negative integers or other dims (``{"seq": "chunk*4"}``). A symbol the
    module does not use, or a value that makes some dimension negative or fractional, is a
    :class:`DimError`.
    """
    out = module.clone()
    substitute(out, env)
    return out


def substitute(module: Module, env: Mapping[str, DimLike], symbols: frozenset[str] | None = None) -> None:
    """:func:`specialize` in place, for a pass that owns ``module`` (it saves a copy of the
    whole module); ``symbols``: the module's, if known. On an error, part of it may have
    changed."""
    if symbols is None:
        symbols = module_symbols(module)
    unknown = sorted(set(env) - symbols)
    if unknown:
        raise DimError(f"specialize: the module has no symbol {', '.join(unknown)} "
                       f"(its symbols: {', '.join(sorted(symbols)) or 'none'})")
    subs = {}
    for k, v in env.items():
        d = Dim.of(v)
        if d.is_const and (d.maybe_int() is None or d.maybe_int() < 0):
            raise DimError(f"specialize: {k} = {d} is not a non-negative integer")
        subs[k] = d
    module.attrs = {k: subs_attr(v, subs) for k, v in module.attrs.items()}
    for name, w in list(module.weights.items()):
        module.weights[name] = Weight(w.name, _subs_type(w.type, subs, f"weight @{name}"), w.source)
    for g in module.graphs.values():
        _subs_graph(g, subs)


def module_symbols(module: Module) -> frozenset[str]:
    found: set[str] = set()
    for w in module.weights.values():
        found |= w.type.symbols
    for v in module.attrs.values():
        found |= _attr_symbols(v)
    for g in module.graphs.values():
        for a in g.args:
            found |= a.type.symbols
        for op in g.walk():
            for r in op.results:
                found |= r.type.symbols
            for region in op.regions:
                for a in region.args:
                    found |= a.type.symbols
            for v in op.attrs.values():
                found |= _attr_symbols(v)
    return frozenset(found)


def _attr_symbols(v: Any) -> frozenset[str]:
    if isinstance(v, Dim):
        return v.symbols
    if isinstance(v, tuple):
        return frozenset().union(*(_attr_symbols(x) for x in v))
    return frozenset()


def subs_attr(v: Any, env: Mapping[str, Dim]) -> Any:
    """An attribute value with symbols substituted in its dims (lists recursively)."""
    if isinstance(v, Dim):
        return v.subs(env)
    if isinstance(v, tuple):
        return tuple(subs_attr(x, env) for x in v)
    return v


def _subs_type(t: TensorType, env: Mapping[str, Dim], what: str) -> TensorType:
    new = t.subs(env)
    for d in new.shape:
        if d.is_const and (d.maybe_int() is None or d.maybe_int() < 0):
            raise DimError(f"specialize: {what} would have type {new}: dimension {d} is not a "
                           "non-negative integer")
    return new


def _values(g: Graph) -> Iterator[tuple[Value, str]]:
    for a in g.args:
        yield a, f"@{g.name} argument %{a.name or a.index}"
    for op in g.ops:
        for r in op.results:
            yield r, op.where()


def _subs_graph(g: Graph, env: Mapping[str, Dim]) -> None:
    for v, what in _values(g):
        v.type = _subs_type(v.type, env, what)
    for op in g.ops:
        _subs_op(op, env)


def _subs_op(op: Operation, env: Mapping[str, Dim]) -> None:
    op.attrs = {k: subs_attr(v, env) for k, v in op.attrs.items()}
    for r in op.regions:
        _subs_graph(r, env)

