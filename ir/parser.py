"""Parse the IR text form (``grammar.lark``) back into a :class:`Module`.

Lark's LALR parser calls :class:`_ToData` as it reduces each rule (no parse tree is built,
and a type is one token whose dims are parsed once and cached, which keeps large modules
fast); :class:`_ModuleBuilder` then resolves value names scope by scope. Every error is a :class:`ParseError` with the file, line and column
of the offending text.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .attributes import AttrError, RawBits, SymbolRef, dense_from_values, unquote
from .core import Graph, IRError, Module, Operation, Value
from .dims import Dim, DimError
from .dtypes import DType
from .errors import RduflowError
from .program import MODULE_ATTRS
from .types import TensorType
from .weights import ExternalFile, InMemory, NpzEntry, OnnxInitializer, ShapeOnly, Weight


class ParseError(RduflowError, ValueError):
    def __init__(self, message: str, filename: str = "<string>", line: int | None = None, column: int | None = None):
        self.filename, self.line, self.column = filename, line, column
        where = filename if line is None else f"{filename}:{line}:{column}"
        super().__init__(f"{where}: {message}")
        self.bare = message


class _At(Exception):
    """A problem found while reducing a rule, at a token; becomes a ParseError with the filename."""

    def __init__(self, message: str, tok: Any):
        super().__init__(message)
        self.message = message
        self.line = getattr(tok, "line", None)
        self.column = getattr(tok, "column", None)


@cache
def _lark(start: str = "start") -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", start=start, maybe_placeholders=True, transformer=_ToData())


def parse_module(text: str, filename: str = "<string>", base_dir: Path | None = None) -> Module:
    try:
        data = _lark().parse(text)
        return _ModuleBuilder(filename, base_dir).build(data)
    except UnexpectedInput as e:
        raise ParseError(_describe(e), filename, *_position(e, text)) from None
    except _At as e:
        raise ParseError(e.message, filename, e.line, e.column) from None
    except RecursionError:
        raise ParseError("regions are nested too deeply", filename) from None


def parse_file(path: str | Path) -> Module:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerates a byte-order mark
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ParseError("not a text file (is it an ONNX model? use 'rduflow import')", str(path)) from None
    # Weight paths are relative to the file itself, also when it is reached through a link.
    return parse_module(text, str(path), base_dir=path.resolve().parent)


@lru_cache(maxsize=4096)
def parse_dim(text: str) -> Dim:
    """A dimension expression such as ``past+seq`` or ``batch*seq/2`` (cached: Dims are immutable)."""
    try:
        return _lark("expr").parse(text)
    except UnexpectedInput as e:
        raise ParseError(_describe(e), "<dim>", *_position(e, text)) from None
    except _At as e:
        raise ParseError(e.message, "<dim>", e.line, e.column) from None


# Terminals as a reader would name them; anonymous ones ("{", "graph") print as themselves.
_TERMINAL_NAMES = {"IDENT": "a name", "TYPE": "a type", "VALUE": "a %value", "INT": "an integer", "FLOAT": "a float",
                   "STRING": "a string", "HEX": "a bit pattern", "SLASH": "'/'", "$END": "end of input"}


def _terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    for t in _lark().terminals:
        if t.name == name and t.pattern.type == "str":
            return f"'{t.pattern.value}'"
    return name


def _position(e: UnexpectedInput, text: str) -> tuple[int, int]:
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        # Lark places the end at the last token; the reader wants the end of the text.
        return text.count("\n") + 1, len(text) - text.rfind("\n")
    return e.line, e.column


def _describe(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        shown = str(tok) if len(str(tok)) <= 40 else str(tok)[:37] + "..."
        what = "unexpected end of input" if tok.type == "$END" else f"unexpected {shown!r}"
        expected = e.expected
    elif isinstance(e, UnexpectedCharacters):
        what = f"unexpected character {e.char!r}"
        expected = e.allowed or set()
    else:
        what, expected = "unexpected input", set()
    if expected and len(expected) <= 8:
        what += f" (expected {', '.join(sorted(_terminal(x) for x in expected))})"
    return what


def _str(tok: Token) -> str:
    try:
        return unquote(str(tok))
    except ValueError as e:
        raise _At(str(e), tok) from None


_DTYPES = {d.value: d for d in DType}


def _dtype(tok: Token, prefix: str = "") -> DType:
    dt = _DTYPES.get(str(tok))
    if dt is None:
        raise _At(f"unknown element type '{prefix}{tok}' (one of {', '.join(_DTYPES)})", tok)
    return dt


class _BadType(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message, self.offset = message, offset


@lru_cache(maxsize=1 << 16)
def _type_from_text(text: str) -> TensorType:
    """``f32[batch, past+seq]`` -> TensorType; errors carry their offset in ``text``."""
    name, _, rest = text.partition("[")
    dt = _DTYPES.get(name)
    if dt is None:
        raise _BadType(f"unknown element type '{name}' (one of {', '.join(_DTYPES)})", 0)
    body = rest[:-1]
    if not body.strip():
        return TensorType((), dt)
    dims, start = [], len(name) + 1
    for part in body.split(","):
        try:
            dims.append(_lark("expr").parse(part))
        except UnexpectedInput as e:
            line, col = _position(e, part)
            raise _BadType(_describe(e), start + _offset(part, line, col)) from None
        except _At as e:
            raise _BadType(e.message, start + _offset(part, e.line, e.column)) from None
        start += len(part) + 1
    return TensorType(dims, dt)


def _offset(text: str, line: int, column: int) -> int:
    """The index in ``text`` of a 1-based line and column."""
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:line - 1]) + column - 1


class _Where(NamedTuple):
    line: int
    column: int


class _Sym(NamedTuple):
    name: str
    tok: Token


class _OpData(NamedTuple):
    results: list[Token]
    name: Token
    operands: list[Token]
    attrs: list[tuple[str, Any, Token]]
    types: list[TensorType]
    regions: list[tuple]
    loc: str | None


# -- rules -> plain data (called by the parser as it reduces) ------------------------------------
class _ToData(Transformer):
    # dims
    def int(self, items):
        return Dim.const(int(items[0]))

    def sym(self, items):
        try:
            return Dim.sym(str(items[0]))
        except DimError as e:
            raise _At(str(e), items[0]) from None

    def neg(self, items):
        return -items[0]

    def add(self, items):
        return items[0] + items[1]

    def sub(self, items):
        return items[0] - items[1]

    def mul(self, items):
        return items[0] * items[1]

    def div(self, items):
        a, slash, b = items
        try:
            return a / b
        except DimError as e:
            raise _At(str(e), slash) from None

    # attributes
    def attr_dim(self, items):
        d = items[0]
        v = d.maybe_int()
        return v if v is not None else d

    def attr_float(self, items):
        x = float(items[0])
        if math.isinf(x):
            raise _At(f"{items[0]} is out of range for a float (write inf)", items[0])
        return x

    def attr_nan(self, _):
        return math.nan

    def attr_inf(self, _):
        return math.inf

    def attr_neginf(self, _):
        return -math.inf

    def attr_str(self, items):
        return _str(items[0])

    def attr_true(self, _):
        return True

    def attr_false(self, _):
        return False

    def attr_dtype(self, items):
        return _dtype(items[0], "!")

    def attr_symbol(self, items):
        return SymbolRef(items[0].name)

    def attr_list(self, items):
        return tuple(i for i in items if i is not None)

    def symbol(self, items):
        tok = items[0]
        return _Sym(_str(tok) if tok.type == "STRING" else str(tok), tok)

    def attr_entry(self, items):
        key, value = items
        return (_str(key) if key.type == "STRING" else str(key), value, key)

    def attr_dict(self, items):
        return [i for i in items if i is not None]

    def sc_float(self, items):
        return float(items[0])

    def sc_int(self, items):
        return int(items[0])

    def sc_negint(self, items):
        return -int(items[0])

    def sc_bits(self, items):
        return RawBits(int(items[0], 16))

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
        return _str(items[0])

    def dense(self, items):
        dt_tok, *rest = items
        dt = _dtype(dt_tok)
        shape = [int(t) for t in rest if isinstance(t, Token)]
        values = [v for v in rest if v is not None and not isinstance(v, Token)]
        try:
            return dense_from_values(dt, shape, values)
        except AttrError as e:
            raise _At(str(e), dt_tok) from None

    # types and structure
    def type(self, items):
        tok = items[0]
        try:
            return _type_from_text(str(tok))
        except _BadType as e:
            before = str(tok)[:e.offset]
            nl = before.rfind("\n")
            line = tok.line + before.count("\n")
            col = tok.column + e.offset if nl < 0 else e.offset - nl
            raise _At(e.message, _Where(line, col)) from None

    def arg(self, items):
        return (items[0], items[1])

    def arg_list(self, items):
        return [i for i in items if i is not None]

    def type_list(self, items):
        return [i for i in items if i is not None]

    def ret_item(self, items):
        return (items[0], _str(items[1]) if items[1] is not None else None)

    def ret(self, items):
        return [i for i in items if i is not None]

    def value_list(self, items):
        return list(items)

    def operand_list(self, items):
        return [i for i in items if i is not None]

    def loc(self, items):
        return _str(items[0])

    def body(self, items):
        return (items[:-1], items[-1])

    def region(self, items):
        return (items[0], items[1])

    def op(self, items):
        results, name, operands, attrs, types, *regions, loc = items
        return _OpData(results or [], name, operands, attrs or [], types or [], regions, loc)

    def result_types(self, items):
        return list(items)

    def graph(self, items):
        return ("graph", *items)

    def weight_decl(self, items):
        return ("weight", *items)

    def ws_shape_only(self, _):
        return ShapeOnly()

    def ws_memory(self, _):
        return InMemory(None)

    def ws_external(self, items):
        return ExternalFile(_str(items[0]), int(items[1]), int(items[2]) if items[2] is not None else None)

    def ws_onnx(self, items):
        return OnnxInitializer(_str(items[0]), _str(items[1]))

    def ws_npz(self, items):
        return NpzEntry(_str(items[0]), _str(items[1]))

    def start(self, items):
        return (items[0] or [], items[1:])


# -- plain data -> Module --------------------------------------------------------------------------
class _ModuleBuilder:
    def __init__(self, filename: str, base_dir: Path | None):
        self.filename = filename
        self.base_dir = base_dir

    def build(self, data: tuple) -> Module:
        attrs, items = data
        m = Module(base_dir=self.base_dir)
        m.attrs = self.attrs(attrs)
        for k, v, tok in attrs:  # declared module attributes are typed (records), as built in code
            spec = MODULE_ATTRS.get(k)
            if spec is not None:
                try:
                    m.attrs[k] = spec.coerce(v, k)
                except AttrError as e:
                    raise _At(f"module {e}", tok) from None
        for item in items:
            if item[0] == "weight":
                _, sym, ty, src = item
                if sym.name in m.weights:
                    raise _At(f"weight @{sym.name} is declared twice", sym.tok)
                m.add_weight(Weight(sym.name, ty, src))
            else:
                _, sym, args, declared, body = item
                if sym.name in m.graphs:
                    raise _At(f"graph @{sym.name} is defined twice", sym.tok)
                g = self.graph(sym.name, args, body)
                if declared != g.output_types:
                    raise _At(f"graph @{sym.name} returns ({', '.join(map(str, g.output_types))}) "
                              f"but declares ({', '.join(map(str, declared))})", sym.tok)
                m.add_graph(g)
        return m

    def attrs(self, entries: list[tuple[str, Any, Token]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v, tok in entries:
            if k in out:
                raise _At(f"attribute '{k}' is given twice", tok)
            out[k] = v
        return out

    def graph(self, name: str, args: list, body: tuple) -> Graph:
        g = Graph(name, [t for _, t in args], [str(tok)[1:] for tok, _ in args])
        scope: dict[str, Value] = {}
        for (tok, _), a in zip(args, g.args):
            if a.name in scope:
                raise _At(f"argument %{a.name} is declared twice", tok)
            scope[a.name] = a
        ops, ret = body
        for od in ops:
            g.append(self.op(od, scope))
        g.set_outputs([self.lookup(tok, scope) for tok, _ in ret], [oname for _, oname in ret])
        return g

    @staticmethod
    def lookup(tok: Token, scope: dict[str, Value]) -> Value:
        name = str(tok)[1:]
        if name not in scope:
            raise _At(f"use of undefined value %{name}", tok)
        return scope[name]

    def op(self, od: _OpData, scope: dict[str, Value]) -> Operation:
        first = od.results[0] if od.results else od.name
        operands = [self.lookup(t, scope) for t in od.operands]
        if len(od.types) != len(od.results):
            raise _At(f"'{od.name}' names {len(od.results)} result(s) but gives {len(od.types)} type(s)", first)
        regions = [self.graph("region", args, body) for args, body in od.regions]
        try:
            op = Operation(str(od.name), operands, od.types, self.attrs(od.attrs), regions,
                           od.loc, [str(t)[1:] for t in od.results])
        except (AttrError, DimError, IRError) as e:
            raise _At(f"'{od.name}': {e}", od.name) from None
        op.srcpos = f"{self.filename}:{first.line}:{first.column}"
        for tok, r in zip(od.results, op.results):
            if r.name in scope:
                raise _At(f"value %{r.name} is defined twice", tok)
            scope[r.name] = r
        return op
