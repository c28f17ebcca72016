"""Every Hugging Face family the importer targets, both exporters, prefill and decode, against onnxruntime.

Exports tiny random models (tests/frontend/hf_models.py), imports them, runs the IR interpreter
and onnxruntime on the same inputs at sizes other than the export's, and prints the relative
error and the import time per export. The test suite checks four families; this sweeps all.

    python benchmarks/import_families.py [--families gpt2,t5] [--opset 18] [--exporters dynamo]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "frontend"))

from hf_models import FAMILIES, export  # noqa: E402
from tiny_models import relative_error, run_onnxruntime  # noqa: E402

from rduflow.compiler.frontend.onnx import import_onnx  # noqa: E402
from rduflow.ir import run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--exporters", default="torchscript,dynamo")
    ap.add_argument("--opset", type=int, default=18)
    args = ap.parse_args()
    # onnxruntime's RotaryEmbedding (opset 23) wants the caches' batch to be the input's
    sizes = ((2, 5, 3), (1, 1, 6)) if args.opset < 23 else ((1, 5, 3), (1, 1, 6))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            for mode in ("prefill",) if family == "bert" else ("prefill", "decode"):
                for exporter in args.exporters.split(","):
                    e = export(family, mode, exporter, Path(tmp), args.opset)
                    t0 = time.perf_counter()
                    try:
                        module = import_onnx(e.path)
                        t1 = time.perf_counter()
                        err = 0.0
                        for b, s, p in sizes:
                            feeds = e.inputs(b, s, p)
                            want = run_onnxruntime(str(e.path), feeds)
                            got = run(module, feeds)
                            err = max(err, *(relative_error(got[k], w) for k, w in want.items()))
                        status = "ok" if err < 1e-4 else "MISMATCH"
                        print(f"{family:9} {mode:8} {exporter:12} {status:8} rel.err {err:.1e}  "
                              f"import {1000 * (t1 - t0):5.0f} ms  {len(module.main.ops)} ops")
                    except Exception as exc:  # report and go on: this is a sweep
                        status = "FAIL"
                        print(f"{family:9} {mode:8} {exporter:12} FAIL     {type(exc).__name__}: {exc}")
                    failures += status != "ok"
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
