"""The ``rduflow`` command: one argparse sub-command per job, one module per group of jobs.

Every command module here has ``register(subparsers)``, which adds its sub-parsers and sets
``func`` on them. Errors a user can cause (:class:`RduflowError`) print one line and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rduflow.ir.errors import RduflowError

from .output import guarded_stdout

# Each module adds its sub-commands; listed here so `rduflow --help` is complete.
COMMAND_MODULES = [
    "rduflow.inference.cli.ir",
    "rduflow.inference.cli.compile",
    "rduflow.inference.cli.importer",
    "rduflow.inference.cli.models",
    "rduflow.inference.cli.arch",
    "rduflow.inference.cli.simulate",
    "rduflow.inference.cli.serve",
]


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line, like every other error (``--help`` shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help shows the options)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rduflow", description="Compile and simulate transformer models on reconfigurable dataflow units.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with guarded_stdout():  # a full disk is an error line, not a traceback or a failure at exit
            return int(args.func(args) or 0)
    except RduflowError as e:
        if args.debug:
            raise
        print(f"rduflow: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rduflow: interrupted", file=sys.stderr, flush=True)
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        # Leave now: interpreter shutdown would join the threads of a process pool whose workers
        # were just killed, and can wait on them forever. Outputs are written whole or not at all.
        os._exit(130)
    except BrokenPipeError:
        return 0

