"""Pipeline text: ``canonicalize,cse,fuse{max-ops=24},place{grid=8x8,seed=1}``.

Passes are separated by commas; options go in braces as ``name=value`` separated by commas.
A value is a bare word (``8x8``, ``1e-3``, ``true``), a double-quoted string, or a bracketed
list ``[0,1,2]``; a bool option may be written bare (``{verbose}``) to mean true.
"""

from __future__ import annotations

import ast
from functools import cache

from lark import Lark, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from .base import ModulePass, PipelineError, Quoted
from .registry import get_pass

_GRAMMAR = r"""
start: [pass_item ("," pass_item)*]
pass_item: NAME [options]
options: "{" [option ("," option)*] "}"
option: NAME ["=" value]
?value: STRING                       -> quoted
      | "[" [value ("," value)*] "]" -> items
      | BARE                         -> bare
NAME: /[A-Za-z_][A-Za-z0-9_-]*/
BARE: /[^\s,{}\[\]"=]+/
STRING: /"(\\.|[^"\\])*"/
%ignore /\s+/
"""

# Terminal names in lark's errors, as a user would say them.
_TOKEN_WORDS = {"NAME": "a name", "BARE": "a value", "STRING": "a quoted string", "COMMA": "','",
                "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "EQUAL": "'='",
                "$END": "the end"}


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", maybe_placeholders=True)


class _ToPasses(Transformer):
    def quoted(self, items):
        return Quoted(ast.literal_eval(str(items[0])))

    def items(self, items):
        return [i for i in items if i is not None]

    def bare(self, items):
        return str(items[0])

    def option(self, items):
        return (str(items[0]), items[1])

    def options(self, items):
        return [i for i in items if i is not None]

    def pass_item(self, items):
        return (str(items[0]), items[1] or [])

    def start(self, items):
        return [i for i in items if i is not None]


def parse_pipeline(text: str) -> list[ModulePass]:
    """Build the passes a pipeline string names; :class:`PipelineError` says what is wrong and where."""
    if not text.strip():
        return []
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise PipelineError(f"bad pipeline {text!r}: {_describe(e, text)}") from None
    try:
        items = _ToPasses().transform(tree)
    except VisitError as e:  # a quoted string with a bad escape
        raise PipelineError(f"bad pipeline {text!r}: {e.orig_exc}") from None
    passes = []
    for name, opts in items:
        cls = get_pass(name)
        raw: dict = {}
        for key, value in opts:
            if key in raw:
                raise PipelineError(f"pass '{name}': option '{key}' is given twice")
            raw[key] = value
        passes.append(cls.from_options(raw))
    return passes


def format_pipeline(passes: list[ModulePass] | tuple[ModulePass, ...]) -> str:
    """The pipeline text that :func:`parse_pipeline` turns back into ``passes``."""
    return ",".join(p.spec() for p in passes)


def _describe(e: UnexpectedInput, text: str) -> str:
    col = getattr(e, "column", None)
    token = getattr(e, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        what = "unexpected end"
    elif token is not None:
        what = f"unexpected '{token}'"
    else:
        pos = getattr(e, "pos_in_stream", None)
        what = f"unexpected '{text[pos]}'" if pos is not None and pos < len(text) else "unexpected input"
    expected = sorted({_TOKEN_WORDS.get(t, t) for t in (getattr(e, "expected", None) or getattr(e, "allowed", None) or [])})
    if expected:
        what += f" (expected {' or '.join(expected)})"
    return f"{what} at column {col}" if isinstance(col, int) and col > 0 else what
