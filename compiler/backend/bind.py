"""``bind``: give the model's dimension symbols values (``batch=1,seq=1,past=4096``).

Placed programs have concrete shapes: a section's tiles, buffers and PCU counts depend on
them. Symbols the module does not use are ignored, so one binding serves prefill and decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext, option
from rduflow.ir import Module
from rduflow.ir.specialize import substitute

from .errors import CompileError


def parse_bindings(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, eq, value = item.partition("=")
        if not eq or not value.strip().isdigit():
            raise ValueError(f"bindings are NAME=INT separated by commas, got {item!r}")
        out[name.strip()] = int(value)
    return out


def format_bindings(bindings: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(bindings.items()))


@dataclass(frozen=True)
class Bind(ModulePass):
    """Substitute values for dimension symbols (those the module does not use are ignored)."""

    name: ClassVar[str] = "bind"
    dims: str = option("", "NAME=INT pairs separated by commas, e.g. batch=1,seq=1,past=4096")
    complete: bool = option(False, "fail if a symbol is left without a value")

    def __post_init__(self) -> None:
        parse_bindings(self.dims)

    def apply(self, module: Module, ctx: PassContext) -> None:
        symbols = module.symbols
        env = {k: v for k, v in parse_bindings(self.dims).items() if k in symbols}
        if env:
            substitute(module, env, symbols)
        left = sorted(module.symbols)
        if self.complete and left:
            raise CompileError(f"the model's shapes use {', '.join(left)} without a value: a placed program has "
                               f"concrete shapes (give them, e.g. --{left[0]} N, or bindings={{'{left[0]}': N}})")
