"""README's two set-up commands: exactly two, the first runs the demo, the second is what CI runs."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_readme_has_exactly_two_one_line_setup_commands():
    cmds = setup_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds), cmds
    install, test = cmds
    assert "python3 -m venv .venv" in install and "pip install -e ." in install and install.endswith("rduflow simulate")
    assert test.startswith("pip install -e '.[test]'") and test.endswith("pytest -q")


def test_ci_runs_the_readme_test_command_verbatim():
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-command"], capture_output=True, text=True,
                         check=True).stdout
    assert out == setup_commands()[1] + "\n"
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert 'eval "$cmd"' in script and "-m venv" in script


def test_ci_refuses_a_readme_without_the_marked_command(tmp_path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    (tmp_path / "README.md").write_text("# nothing here\n")
    r = subprocess.run(["bash", str(tmp_path / ".ci" / "run"), "--print-command"], capture_output=True, text=True)
    assert r.returncode == 2 and "setup command 2" in r.stderr
