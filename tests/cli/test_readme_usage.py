"""Every line of README's Usage block runs as written, in order, in an empty folder."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def usage_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Usage", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_usage_block_names_every_file_it_uses_before_using_it():
    lines = usage_lines()
    made = [i for i, line in enumerate(lines) if "-o model.onnx" in line]
    used = [i for i, line in enumerate(lines) if re.search(r"\b(import|run|simulate|compile) model\.onnx", line)]
    assert made and used and made[0] < min(used)


def test_every_usage_line_runs_as_written(tmp_path):
    # The interpreter running the tests, and its rduflow script, come first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg"}
    for line in usage_lines():
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
    for made in ("decode.onnx", "r.html", "r.json", "compare.md", "out/placed.rdu", "model.rdu", "out.npz", "demo.rdu"):
        assert (tmp_path / made).is_file(), made
