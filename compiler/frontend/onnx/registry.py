"""Operator converters, one class per ONNX operator, versioned like TVM Relax's frontend.

A converter defines ``_impl_vN`` class methods; for a model importing opset V of the
operator's domain, the one with the largest N <= V converts the node. Each impl gets the
:class:`NodeContext`, the node's inputs (``None`` for an omitted optional input) and its
attributes, and returns the node's outputs as :class:`Tensor` (a list when there are several).
``static_inputs`` lists the input positions that must be known at import time (shapes,
axes, counts): the IR writes those as attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

_CONVERTERS: dict[tuple[str, str], type[OnnxOpConverter]] = {}


class OnnxOpConverter:
    op_type: ClassVar[str]
    domain: ClassVar[str] = ""
    static_inputs: ClassVar[tuple[int, ...]] = ()

    @classmethod
    def versions(cls) -> list[int]:
        if "_versions" not in cls.__dict__:
            cls._versions = sorted(int(n[len("_impl_v"):]) for n in dir(cls) if n.startswith("_impl_v"))
        return cls._versions

    @classmethod
    def impl_for(cls, opset: int) -> Callable | None:
        usable = [v for v in cls.versions() if v <= opset]
        return getattr(cls, f"_impl_v{max(usable)}") if usable else None


def converter(op_type: str, domain: str = "", static_inputs: tuple[int, ...] = ()):
    """Register a converter class for ``domain``'s ``op_type``."""

    def wrap(cls: type[OnnxOpConverter]) -> type[OnnxOpConverter]:
        cls.op_type, cls.domain, cls.static_inputs = op_type, domain, static_inputs
        key = (domain, op_type)
        if key in _CONVERTERS:
            raise ValueError(f"converter for {domain or 'ai.onnx'} {op_type} registered twice")
        _CONVERTERS[key] = cls
        return cls

    return wrap


def get_converter(domain: str, op_type: str) -> type[OnnxOpConverter] | None:
    from . import ops  # noqa: F401  (registers the converters)

    return _CONVERTERS.get((domain, op_type))


def all_converters() -> dict[tuple[str, str], type[OnnxOpConverter]]:
    from . import ops  # noqa: F401

    return dict(_CONVERTERS)
