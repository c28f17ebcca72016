"""Module passes: one frozen dataclass per pass, whose fields are its options.

A pass is written in a pipeline as its name with optional options in braces,
``fuse{max-ops=24}``: option names are the field names with ``-`` for ``_``, and values
are converted to the field's declared type (int, float, bool, str, tuples of those, or
``X | None``). See ``pipeline.py`` for the text form and ``registry.py`` for the names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rduflow.ir import Module
from rduflow.ir.errors import RduflowError

if TYPE_CHECKING:
    from .context import PassContext


class PipelineError(RduflowError, ValueError):
    """A pipeline the user wrote cannot be built: bad syntax, unknown pass, bad option value."""


def option(default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """Declare a pass option with a one-line description (shown by ``rduflow opt --list-passes``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class PassOption:
    name: str  # as written in a pipeline, e.g. "max-ops"
    field: str  # the dataclass field, e.g. "max_ops"
    type: Any
    default: Any  # dataclasses.MISSING when the option is required
    doc: str

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def describe(self) -> str:
        default = "required" if self.required else f"default {format_value(self.default)}"
        text = f"{self.name}: {type_name(self.type)} ({default})"
        return f"{text}  {self.doc}" if self.doc else text


@dataclass(frozen=True)
class ModulePass:
    """Base class of passes. Subclasses set ``name`` and implement :meth:`apply`."""

    name: ClassVar[str]
    needs_target: ClassVar[bool] = False  # reads ``ctx.target``: the pass manager checks a run has one

    def apply(self, module: Module, ctx: PassContext) -> None:
        """Transform ``module`` in place. Raise a :class:`RduflowError` for problems the user can fix."""
        raise NotImplementedError(f"pass '{self.name}' has no apply()")

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring ("" without one; @dataclass fills in a signature then)."""
        doc = (cls.__doc__ or "").strip()
        return "" if not doc or doc.startswith(f"{cls.__name__}(") else doc.splitlines()[0]

    @classmethod
    def options(cls) -> list[PassOption]:
        hints = typing.get_type_hints(cls)
        return [
            PassOption(f.name.replace("_", "-"), f.name, hints[f.name], f.default, f.metadata.get("doc", ""))
            for f in dataclasses.fields(cls)
        ]

    @classmethod
    def from_options(cls, raw: dict[str, RawValue]) -> ModulePass:
        """Build the pass from option values as parsed from a pipeline (strings, lists, or None for a bare flag)."""
        opts = {o.name: o for o in cls.options()}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            o = opts.get(key) or opts.get(key.replace("_", "-"))
            if o is None and key == "arch" and cls.needs_target:
                raise PipelineError(f"pass '{cls.name}' takes its target architecture from the pass context, "
                                    "not from an option (on the command line: --arch)")
            if o is None:
                known = ", ".join(f"{o.name} ({type_name(o.type)})" for o in opts.values())
                raise PipelineError(f"pass '{cls.name}' has no option '{key}' "
                                    f"({'options: ' + known if known else 'it takes no options'})")
            try:
                kwargs[o.field] = convert(value, o.type)
            except ValueError as e:
                raise PipelineError(f"pass '{cls.name}': option '{o.name}' {e}") from None
        missing = [o.name for o in opts.values() if o.required and o.field not in kwargs]
        if missing:
            raise PipelineError(f"pass '{cls.name}' needs option(s) {', '.join(missing)}")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:  # checks in __post_init__
            raise PipelineError(f"pass '{cls.name}': {e}") from None

    def spec(self) -> str:
        """The pipeline text for this pass; options at their default are left out."""
        items = []
        for o in self.options():
            v = getattr(self, o.field)
            if o.required or not _same(v, o.default):
                items.append(f"{o.name}={format_value(v)}")
        return self.name + ("{" + ",".join(items) + "}" if items else "")


# -- option values -------------------------------------------------------------------------------
class Quoted(str):
    """A value written in double quotes: always a string, never a number or a list."""


RawValue = str | Quoted | list | None  # None: the option was written without "=value"


def convert(raw: RawValue, tp: Any) -> Any:
    """Convert a parsed option value to type ``tp``; ValueError says what was expected."""
    inner = _optional_inner(tp)
    if inner is not None:
        if isinstance(raw, str) and not isinstance(raw, Quoted) and raw.lower() == "none":
            return None
        return convert(raw, inner)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        variadic = len(args) == 2 and args[1] is Ellipsis
        items = _tuple_items(raw, tp, numeric=args[0] in (int, float))
        elem_types = [args[0]] * len(items) if variadic else list(args)
        if len(items) != len(elem_types):
            raise ValueError(f"expects {type_name(tp)}, got {len(items)} value(s)")
        return tuple(convert(v, t) for v, t in zip(items, elem_types))
    if isinstance(raw, list):
        raise ValueError(f"expects {type_name(tp)}, got a list")
    if tp is bool:
        if raw is None:
            return True
        v = raw.lower()
        if v in ("true", "1"):
            return True
        if v in ("false", "0"):
            return False
        raise ValueError(f"expects true or false, got '{raw}'")
    if raw is None:
        raise ValueError(f"expects {type_name(tp)}, got no value (write {type_name(tp)} after '=')")
    if tp is str:
        return str(raw)
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expects an int, got '{raw}'") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expects a float, got '{raw}'") from None
    raise TypeError(f"unsupported option type {tp!r}: use int, float, bool, str, tuples of those or X | None")


def _tuple_items(raw: RawValue, tp: Any, numeric: bool) -> list:
    if isinstance(raw, list):
        return raw
    if raw is None:
        raise ValueError(f"expects {type_name(tp)}, got no value")
    # "8x8" is shorthand for a tuple of numbers; any other single value is a 1-tuple.
    if numeric and not isinstance(raw, Quoted) and re.fullmatch(r"[-+0-9.eE]+(x[-+0-9.eE]+)+", raw):
        return raw.split("x")
    return [raw]


def format_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return v if re.fullmatch(r"[^\s,{}\[\]\"=\\]+", v) and v.lower() not in ("none", "true", "false") else _quote(v)
    if isinstance(v, tuple):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def type_name(tp: Any) -> str:
    inner = _optional_inner(tp)
    if inner is not None:
        return f"{type_name(inner)} or none"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return "(" + ", ".join(type_name(a) for a in args) + ")"
    return getattr(tp, "__name__", str(tp))


def _optional_inner(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _quote(s: str) -> str:
    return json.dumps(s)  # its escapes are Python's too, which is how pipeline.py reads them back


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b
