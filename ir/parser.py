"""Parse the IR text form (``grammar.lark``) back into a :class:`Module`.

Errors are :class:`ParseError` with the file, line and column of the offending text.
"""

from __future__ import annotations

import ast
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput, v_args

from .attributes import AttrError, Dense, SymbolRef
from .errors import RduflowError
from .core import Graph, IRError, Module, Operation, Value
from .dims import Dim, DimError
from .dtypes import DType
from .types import TensorType
from .weights import ExternalFile, InMemory, NpzEntry, OnnxInitializer, ShapeOnly, Weight


class ParseError(RduflowError, ValueError):
    def __init__(self, message: str, filename: str = "<string>", line: int | None = None, column: int | None = None):
        self.filename, self.line, self.column = filename, line, column
        where = filename if line is None else f"{filename}:{line}:{column}"
        super().__init__(f"{where}: {message}")
        self.bare = message


@cache
def _lark(start: str = "start") -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", start=start, propagate_positions=True, maybe_placeholders=True)


def parse_module(text: str, filename: str = "<string>", base_dir: Path | None = None) -> Module:
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise ParseError(_describe(e, text), filename, e.line, e.column) from None
    return _ModuleBuilder(filename, base_dir).build(_ToData().transform(tree))


def parse_file(path: str | Path) -> Module:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ParseError("not a text file (is it an ONNX model? use 'rduflow import')", str(path)) from None
    return parse_module(text, str(path), base_dir=path.parent)


def parse_dim(text: str) -> Dim:
    try:
        tree = _lark("expr").parse(text)
    except UnexpectedInput as e:
        raise ParseError(_describe(e, text), "<dim>", e.line, e.column) from None
    return _ToData().transform(tree)


def _describe(e: UnexpectedInput, text: str) -> str:
    token = getattr(e, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        what = "unexpected end of input"
    elif token is not None:
        what = f"unexpected '{token}'"
    else:
        ch = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else "?"
        what = f"unexpected character '{ch}'"
    expected = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or [])
    if expected and len(expected) <= 8:
        what += f" (expected {', '.join(expected)})"
    return what


def _unquote(tok: str) -> str:
    return ast.literal_eval(tok) if tok.startswith('"') else tok


# -- tree -> plain data ----------------------------------------------------------------------
class _ToData(Transformer):
    # dims
    def int(self, items):
        return Dim.const(int(items[0]))

    def sym(self, items):
        return Dim.sym(str(items[0]))

    def neg(self, items):
        return -items[0]

    def add(self, items):
        return items[0] + items[1]

    def sub(self, items):
        return items[0] - items[1]

    def mul(self, items):
        return items[0] * items[1]

    def div(self, items):
        return items[0] / items[1]

    # attributes
    def attr_dim(self, items):
        d = items[0]
        v = d.maybe_int()
        return v if v is not None else d

    def attr_float(self, items):
        return float(items[0])

    def attr_nan(self, _):
        return math.nan

    def attr_inf(self, _):
        return math.inf

    def attr_neginf(self, _):
        return -math.inf

    def attr_str(self, items):
        return _unquote(items[0])

    def attr_true(self, _):
        return True

    def attr_false(self, _):
        return False

    def attr_dtype(self, items):
        return ("dtype", str(items[0]), items[0])

    def attr_symbol(self, items):
        return items[0]

    def attr_list(self, items):
        return tuple(i for i in items if i is not None)

    def symbol(self, items):
        return SymbolRef(_unquote(str(items[0])))

    def attr_entry(self, items):
        return (str(items[0]), items[1])

    def attr_dict(self, items):
        return [i for i in items if i is not None]

    def sc_float(self, items):
        return float(items[0])

    def sc_int(self, items):
        return int(items[0])

    def sc_negint(self, items):
        return -int(items[0])

    def sc_nan(self, _):
        return math.nan

    def sc_inf(self, _):
        return math.inf

    def sc_neginf(self, _):
        return -math.inf

    def sc_true(self, _):
        return True

    def sc_false(self, _):
        return False

    def sc_str(self, items):
        return _unquote(items[0])

    def dense(self, items):
        dt_tok = items[0]
        rest = [i for i in items[1:] if i is not None]
        shape = [int(t) for t in rest if isinstance(t, Token) and t.type == "INT"]
        values = [v for v in rest if not (isinstance(v, Token) and v.type == "INT")]
        return ("dense", dt_tok, shape, values)

    # types and structure
    @v_args(meta=True)
    def type(self, meta, items):
        return ("type", items[0], [d for d in items[1:] if d is not None], meta)

    def arg(self, items):
        return (str(items[0])[1:], items[1])

    def arg_list(self, items):
        return [i for i in items if i is not None]

    def type_list(self, items):
        return [i for i in items if i is not None]

    def ret_item(self, items):
        return (items[0], _unquote(items[1]) if items[1] is not None else None)

    def ret(self, items):
        return [i for i in items if i is not None]

    def value_list(self, items):
        return list(items)

    def operand_list(self, items):
        return [i for i in items if i is not None]

    def loc(self, items):
        return ("loc", _unquote(items[0]))

    def body(self, items):
        return {"ops": items[:-1], "ret": items[-1]}

    def region(self, items):
        return ("region", items[0], items[1])

    @v_args(meta=True)
    def op(self, meta, items):
        results, name, operands, attrs, types, *regions, loc = items
        return {"results": results or [], "name": name, "operands": operands, "attrs": attrs or [],
                "types": types or [], "regions": regions, "loc": loc[1] if loc else None, "meta": meta}

    def result_types(self, items):
        return list(items)

    def graph(self, items):
        return ("graph", items[0], items[1], items[2], items[3])

    @v_args(meta=True)
    def weight_decl(self, meta, items):
        return ("weight", items[0], items[1], items[2], meta)

    def ws_shape_only(self, _):
        return ShapeOnly()

    def ws_memory(self, _):
        return InMemory(None)

    def ws_external(self, items):
        return ExternalFile(_unquote(items[0]), int(items[1]), int(items[2]) if items[2] is not None else None)

    def ws_onnx(self, items):
        return OnnxInitializer(_unquote(items[0]), _unquote(items[1]))

    def ws_npz(self, items):
        return NpzEntry(_unquote(items[0]), _unquote(items[1]))

    def start(self, items):
        return {"attrs": items[0] or [], "items": items[1:]}


# -- plain data -> Module ----------------------------------------------------------------------
class _ModuleBuilder:
    def __init__(self, filename: str, base_dir: Path | None):
        self.filename = filename
        self.base_dir = base_dir

    def err(self, msg: str, meta: Any = None, tok: Any = None) -> ParseError:
        line = getattr(tok, "line", None) or getattr(meta, "line", None)
        col = getattr(tok, "column", None) or getattr(meta, "column", None)
        return ParseError(msg, self.filename, line, col)

    def build(self, data: dict) -> Module:
        m = Module(base_dir=self.base_dir)
        m.attrs = dict(self.attrs(data["attrs"], None))
        for item in data["items"]:
            if item[0] == "weight":
                _, sym, ty, src, meta = item
                if sym.name in m.weights:
                    raise self.err(f"weight @{sym.name} is declared twice", meta)
                m.add_weight(Weight(sym.name, self.type(ty), src))
            else:
                _, sym, args, out_types, body = item
                if sym.name in m.graphs:
                    raise self.err(f"graph @{sym.name} is defined twice")
                g = self.graph(sym.name, args, body, m)
                declared = [self.type(t) for t in out_types]
                if declared != g.output_types:
                    raise self.err(f"graph @{sym.name} returns ({', '.join(map(str, g.output_types))}) "
                                   f"but declares ({', '.join(map(str, declared))})", out_types[0][3] if out_types else None)
                m.add_graph(g)
        return m

    def type(self, t) -> TensorType:
        _, dt_tok, dims, meta = t
        try:
            return TensorType(dims, DType(str(dt_tok)))
        except ValueError:
            raise self.err(f"unknown element type '{dt_tok}' (one of {', '.join(d.value for d in DType)})",
                           tok=dt_tok) from None

    def attrs(self, entries, meta) -> list[tuple[str, Any]]:
        return [(k, self.attr_value(v, meta)) for k, v in entries]

    def attr_value(self, v, meta):
        if isinstance(v, tuple) and v and v[0] == "dtype":
            try:
                return DType(v[1])
            except ValueError:
                raise self.err(f"unknown element type '!{v[1]}'", tok=v[2]) from None
        if isinstance(v, tuple) and v and v[0] == "dense":
            _, dt_tok, shape, values = v
            try:
                dt = DType(str(dt_tok))
            except ValueError:
                raise self.err(f"unknown element type '{dt_tok}'", tok=dt_tok) from None
            n = int(np.prod(shape, dtype=np.int64))
            if len(values) != n:
                raise self.err(f"dense of shape {shape} needs {n} values, has {len(values)}", tok=dt_tok)
            arr = np.array(values, dtype=dt.numpy if dt is not DType.string else object).reshape(shape)
            return Dense(arr, dt)
        if isinstance(v, tuple):
            return tuple(self.attr_value(x, meta) for x in v)
        return v

    def graph(self, name: str, args, body, module: Module, parent_scope: dict | None = None) -> Graph:
        g = Graph(name, [self.type(t) for _, t in args], [n for n, _ in args])
        scope: dict[str, Value] = {}
        for a in g.args:
            if a.name in scope:
                raise self.err(f"argument %{a.name} is declared twice")
            scope[a.name] = a
        for od in body["ops"]:
            g.append(self.op(od, scope, module))
        outs, onames = [], []
        for tok, oname in body["ret"]:
            outs.append(self.lookup(tok, scope))
            onames.append(oname)
        g.set_outputs(outs, onames)
        return g

    def lookup(self, tok, scope) -> Value:
        name = str(tok)[1:]
        if name not in scope:
            raise self.err(f"use of undefined value %{name}", tok=tok)
        return scope[name]

    def op(self, od: dict, scope: dict, module: Module) -> Operation:
        meta = od["meta"]
        operands = [self.lookup(t, scope) for t in od["operands"]]
        types = [self.type(t) for t in od["types"]]
        if len(types) != len(od["results"]):
            raise self.err(f"'{od['name']}' names {len(od['results'])} result(s) but gives {len(types)} type(s)", meta)
        regions = [self.graph("region", args, body, module) for _, args, body in od["regions"]]
        try:
            op = Operation(str(od["name"]), operands, types, dict(self.attrs(od["attrs"], meta)), regions,
                           od["loc"], [str(t)[1:] for t in od["results"]])
        except (AttrError, DimError, IRError) as e:
            raise self.err(f"'{od['name']}': {e}", meta) from None
        op.srcpos = f"{self.filename}:{meta.line}:{meta.column}"
        for tok, r in zip(od["results"], op.results):
            if r.name in scope:
                raise self.err(f"value %{r.name} is defined twice", tok=tok)
            scope[r.name] = r
        return op
