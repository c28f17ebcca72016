"""The IR's text form. ``parse(print(m))`` prints identically (see ``parser.py``).

    module {
      weight @wte : f32[50257, 768] = external("model.onnx.data", offset=0, length=154389504)
      graph @main(%ids: i64[batch, seq]) -> (f32[batch, seq, 768]) {
        %wte = weight() {ref = @wte} : f32[50257, 768]
        %x = gather(%wte, %ids) : f32[batch, seq, 768] loc("/wte/Gather")
        return %x as "hidden"
      }
    }

Attributes equal to their declared default are left out; parsing puts them back.
Data never appears in bulk: weights print as references to where their bytes live, and a
``constant`` of more than :data:`MAX_INLINE_ELEMENTS` elements prints as a reference to a
weight declared ``memory`` (its data stays with the process that built it).
"""

from __future__ import annotations

import re
from typing import Any

from .attributes import AttrError, Dense, SymbolRef, coerce, format_attr, quote, quote_name
from .attributes import AttrKind
from .core import Graph, IRError, Module, Operation, Value
from .opdef import lookup_opdef
from .weights import InMemory, Weight

MAX_INLINE_ELEMENTS = 256

_NAME_RE = re.compile(r"[A-Za-z0-9_.$/-]+")


def print_module(module: Module) -> str:
    module = hoist_large_constants(module)
    lines = ["module" + _attr_dict(module.attrs, None, "module") + " {"]
    for w in module.weights.values():
        lines.append(f"  weight {_symbol(w.name)} : {w.type} = {w.source.describe()}")
    for g in module.graphs.values():
        lines.extend(_graph_lines(g, "  ", top=True))
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_graph(graph: Graph) -> str:
    graph = hoist_large_constants(Module([graph.clone()])).main
    return "\n".join(_graph_lines(graph, "", top=True)) + "\n"


def print_op(op: Operation) -> str:
    """One op on its own, for diagnostics (names as they stand)."""
    names = _Namer()
    for v in op.operands:
        names.name(v)
    return "\n".join(_op_lines(op, names, ""))


class _Namer:
    """Unique printed names per graph scope: a value's own name if free, else a number."""

    def __init__(self) -> None:
        self.names: dict[Value, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def name(self, v: Value) -> str:
        if v in self.names:
            return self.names[v]
        base = v.name if v.name and _NAME_RE.fullmatch(v.name) else None
        if base is None:
            while str(self.counter) in self.used:
                self.counter += 1
            n = str(self.counter)
        else:
            n, k = base, 1
            while n in self.used:
                n = f"{base}_{k}"
                k += 1
        self.used.add(n)
        self.names[v] = n
        return n

    def ref(self, v: Value) -> str:
        n = self.names.get(v)
        return f"%{n}" if n is not None else f"%<undefined {v.name or '?'}>"


def hoist_large_constants(module: Module) -> Module:
    """``module`` itself, or a copy in which each constant too large to print inline is an
    in-memory weight (named after its value, in print order). The printer prints that copy;
    ``save_module`` writes the same weights' data beside the text."""
    if not any(_is_large(op) for g in module.graphs.values() for op in g.walk()):
        return module
    m = module.clone()
    taken = set(m.weights) | {op.attrs["ref"].name for g in m.graphs.values() for op in g.walk()
                              if op.opname == "weight" and isinstance(op.attrs.get("ref"), SymbolRef)}
    for g in m.graphs.values():
        for op in list(g.walk()):
            if not _is_large(op):
                continue
            r = op.results[0]
            base = r.name if r.name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$]*", r.name) else "const"
            name, k = base, 1
            while name in taken:
                name, k = f"{base}.{k}", k + 1
            taken.add(name)
            m.add_weight(Weight(name, r.type, InMemory(op.attrs["value"].array)))
            ref = Operation("weight", [], [r.type], {"ref": SymbolRef(name)}, loc=op.loc, result_names=[r.name])
            owner = op.parent
            owner.ops[owner.ops.index(op)] = ref
            ref.parent = owner
            owner.replace_all_uses(r, ref.results[0])
    return m


def _is_large(op: Operation) -> bool:
    value = op.attrs.get("value")
    return (op.opname == "constant" and isinstance(value, Dense) and value.array.size > MAX_INLINE_ELEMENTS
            and len(op.results) == 1)


def _graph_lines(g: Graph, indent: str, top: bool) -> list[str]:
    names = _Namer()
    args = ", ".join(f"%{names.name(a)}: {a.type}" for a in g.args)
    if top:
        outs = ", ".join(str(v.type) for v in g.outputs)
        head = f"{indent}graph {_symbol(g.name)}({args}) -> ({outs}) {{"
    else:
        head = f"region({args}) {{"
    lines = [head]
    for op in g.ops:
        lines.extend(_op_lines(op, names, indent + "  "))
    rets = []
    for i, v in enumerate(g.outputs):
        item = names.ref(v)
        oname = g.output_names[i] if i < len(g.output_names) else None
        if oname is not None:
            item += f" as {quote(oname)}"
        rets.append(item)
    lines.append(f"{indent}  return" + (" " + ", ".join(rets) if rets else ""))
    lines.append(f"{indent}}}")
    return lines


def _op_lines(op: Operation, names: _Namer, indent: str) -> list[str]:
    operands = ", ".join(names.ref(v) for v in op.operands)
    text = f"{op.opname}({operands})" + _attr_dict(op.attrs, op.opname, op)
    if op.results:
        text = ", ".join(f"%{names.name(r)}" for r in op.results) + " = " + text
        text += " : " + ", ".join(str(r.type) for r in op.results)
    lines = [indent + text]
    for r in op.regions:
        sub = _graph_lines(r, indent, top=False)
        lines[-1] += " " + sub[0]
        lines.extend(sub[1:])
    if op.loc is not None:
        lines[-1] += f" loc({quote(op.loc)})"
    return lines


def _attr_dict(attrs: dict, opname: str | None, owner: Any) -> str:
    opdef = lookup_opdef(opname) if opname else None
    items = []
    for k, v in sorted(attrs.items()):
        spec = opdef.attrs.get(k) if opdef else None
        if spec is not None and not spec.required and spec.default == v and type(spec.default) is type(v):
            continue
        try:
            text = format_attr(coerce(AttrKind.ANY, v, k))
        except (AttrError, TypeError):
            where = owner.where() if isinstance(owner, Operation) else owner
            raise IRError(f"{where}: attribute '{k}' = {v!r} cannot be printed "
                          "(use ints, floats, strings, bools, DType, Dim, SymbolRef, Dense or lists of them)") from None
        items.append(f"{quote_name(str(k))} = {text}")
    return " {" + ", ".join(items) + "}" if items else ""


def _symbol(name: str) -> str:
    return str(SymbolRef(name))
