"""The MODEL argument and ``--dim``, shared by every command that takes a model."""

from __future__ import annotations

import argparse

from rduflow.inference.dim_roles import ROLES, parse_dim_override
from rduflow.inference.errors import LlmSimError
from rduflow.inference.model_source import ModelSource, resolve_model

MODEL_HELP = ("a model-library preset (rduflow models list), a Hugging Face config.json or a folder holding one, "
              "an ONNX file or IR text")


def add_dim_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", action="append", default=[], metavar="NAME=ROLE|N", type=_dim,
                   help=f"a dimension of an ONNX or IR model: its role ({', '.join(ROLES)}) when the graph does "
                        "not show it, or a fixed value (repeat for several)")


def model_argument(args: argparse.Namespace) -> ModelSource:
    """``args.model`` resolved, with the ``--dim`` overrides (the last one per name wins)."""
    return resolve_model(args.model).with_dims(dict(args.dim))


def _dim(text: str) -> tuple[str, str | int]:
    try:
        return parse_dim_override(text)
    except LlmSimError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
