"""The role of each dimension symbol of a model file: ``batch``, ``seq`` (new tokens per step)
or ``past`` (tokens already in the KV cache), the three symbols the simulator binds and
``compile --batch/--seq/--past`` set.

Exporters name dimensions as they like (Hugging Face's ``batch_size``, ``sequence_length``,
``past_sequence_length``, ``total_sequence_length``; dynamo's ``s43``), so the roles are read
off the graph's inputs and the symbols renamed:

* the token input (``input_ids``, else the first integer input of rank 2): axis 0 is the
  batch, axis 1 the new tokens (seq);
* a KV-cache input (a graph input a ``concat`` appends to): axis 0 is the batch, the concat's
  axis the past;
* an attention mask (an integer input of rank 2 named ``*mask*``): axis 0 is the batch, axis 1
  covers past and new tokens (past+seq, or seq in a graph without a cache); position ids
  (``*position*``): batch and seq.

A symbol already named ``batch``, ``seq`` or ``past`` keeps that meaning. ``--dim NAME=ROLE``
gives a symbol a role the graph does not show, ``--dim NAME=N`` fixes it to a value; both come
before what is inferred.
"""

from __future__ import annotations

from collections.abc import Mapping

from rduflow.ir import Dim, DimError, Graph, Module, Value, specialize

from .errors import LlmSimError

ROLES = ("batch", "seq", "past")


def parse_dim_override(text: str) -> tuple[str, str | int]:
    """``NAME=ROLE`` or ``NAME=N`` (a ``--dim`` value) -> (NAME, ROLE or N)."""
    name, eq, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not eq or not name or not value:
        raise LlmSimError(f"--dim {text}: expected NAME=ROLE or NAME=N (ROLE: {', '.join(ROLES)})")
    if value.isdigit():
        return name, int(value)
    if value not in ROLES:
        raise LlmSimError(f"--dim {text}: {value!r} is neither a role ({', '.join(ROLES)}) nor a non-negative integer")
    return name, value


def assign_roles(module: Module, overrides: Mapping[str, str | int], where: str) -> Module:
    """``module`` with its dimension symbols renamed to their roles (and those fixed by
    ``overrides`` substituted); symbols left without a role stay as they are, for the caller
    to report. ``where`` (the file) starts error messages."""
    symbols = module.symbols
    unknown = sorted(set(overrides) - symbols)
    if unknown:
        raise LlmSimError(f"--dim {unknown[0]}: {where} has no dimension named {unknown[0]!r} "
                          f"(its dimensions: {', '.join(sorted(symbols)) or 'none'})")
    roles: dict[str, str] = {k: v for k, v in overrides.items() if isinstance(v, str)}
    for name, role in _inferred(module.main):
        if name not in overrides and name not in ROLES and name not in roles:
            roles[name] = role
    past_known = "past" in symbols or "past" in roles.values()
    env: dict[str, str | int] = {k: v for k, v in overrides.items() if isinstance(v, int)}
    for name, role in roles.items():
        if role == "past+seq" and not past_known:
            role = "seq"
        if role != name:
            env[name] = role
    if not env:
        return module
    try:
        return specialize(module, env)
    except DimError as e:
        raise LlmSimError(f"{where}: giving the dimensions their roles ({_describe(env)}) fails: {e}; "
                          "name them with --dim NAME=ROLE or NAME=N") from None


def check_run_sets(module: Module, overrides: Mapping[str, str | int], where: str) -> None:
    """A run binds batch, seq and past from --batch, --prompt and --gen: fixing one of them with
    ``--dim NAME=N`` would simulate one thing and report another, so it is refused."""
    roles: dict[str, str] = {}
    for name, role in _inferred(module.main):
        roles.setdefault(name, role)  # the strongest evidence comes first
    for name, value in overrides.items():
        role = name if name in ROLES else roles.get(name)
        if isinstance(value, int) and role in ("batch", "seq", "past", "past+seq"):
            raise LlmSimError(f"--dim {name}={value}: in {where}, {name} is the {role} dimension, which a run sets "
                              f"from --batch, --prompt and --gen; give those (or --dim {name}=ROLE)")


def unbound_hint(symbols: list[str]) -> str:
    """How to give each of ``symbols`` a value or a role on the command line."""
    return ", ".join(f"--{s} N" if s in ROLES else f"--dim {s}=ROLE|N" for s in symbols)


def _describe(env: Mapping[str, str | int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items()))


def _inferred(g: Graph) -> list[tuple[str, str]]:
    """(symbol, role) pairs read off the inputs, strongest evidence first."""
    out: list[tuple[str, str]] = []
    ints = [a for a in g.args if a.type.dtype.is_int and len(a.type.shape) == 2]
    token = next((a for a in ints if a.name == "input_ids"), ints[0] if ints else None)
    if token is not None:
        out += _axes(token, {0: "batch", 1: "seq"})
    args = set(g.args)
    for op in g.ops:
        if op.opname == "concat":
            for v in op.operands:
                if v in args:
                    out += _axes(v, {0: "batch", op.attrs["axis"] % len(v.type.shape): "past"})
    for a in ints:
        name = (a.name or "").lower()
        if a is not token and "mask" in name:
            out += _axes(a, {0: "batch", 1: "past+seq"})
        elif a is not token and "position" in name:
            out += _axes(a, {0: "batch", 1: "seq"})
    return out


def _axes(v: Value, roles: Mapping[int, str]) -> list[tuple[str, str]]:
    """The bare symbols at the given axes of ``v``'s shape, with their roles."""
    out = []
    for axis, role in roles.items():
        if axis < len(v.type.shape):
            d = Dim.of(v.type.shape[axis])
            if len(d.symbols) == 1 and d == Dim.sym(next(iter(d.symbols))):
                out.append((next(iter(d.symbols)), role))
    return out
