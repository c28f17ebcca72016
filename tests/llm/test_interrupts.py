"""Long runs and interruptions (issue 15, section 4): a context longer than the model's is
refused, progress shows off a terminal, workers die with their parent, Ctrl-C is one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rduflow.inference.run as run_mod
from rduflow.inference.cli import main
from rduflow.inference.config import RunConfig
from rduflow.inference.errors import LlmSimError
from rduflow.inference.run import simulate_llm


def test_a_context_longer_than_the_model_is_refused(capsys):
    assert main(["simulate", "tiny-gpt2", "--arch", "h100-sxm", "--prompt", "60", "--gen", "8"]) == 1
    assert capsys.readouterr().err == (
        "rduflow: error: --prompt 60 + --gen 8 = 68 tokens exceed tiny-gpt2's maximum context of 64 "
        "(max_position_embeddings); --allow-long-context simulates it anyway\n")
    assert main(["simulate", "tiny-gpt2", "--arch", "h100-sxm", "--prompt", "60", "--gen", "8",
                 "--allow-long-context", "--json"]) == 0
    with pytest.raises(LlmSimError, match="tiny-gpt2's maximum context of 64"):  # a draft model's too
        main(["--debug", "simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "60", "--gen", "8",
              "--spec-decode", "tiny-gpt2,k=2,accept=0.5"])


def test_progress_is_a_line_per_stage_off_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(run_mod, "PLAIN_AFTER_S", 0.0)  # as if the run were long
    simulate_llm(RunConfig("tiny-llama", "h100-sxm", prompt=16, gen=4), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("rduflow: tiny-llama on 1 x h100-sxm: ") for line in lines)
    assert any(": decode (" in line for line in lines)
    assert main(["simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "16", "--gen", "4", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_short_run_prints_no_progress(capsys):
    simulate_llm(RunConfig("tiny-llama", "h100-sxm", prompt=16, gen=4), progress=True)
    assert capsys.readouterr().err == ""


# A simulation with worker processes: two workers whatever this machine's CPUs.
_SIMULATE = ("import os, sys\n"
             "os.sched_getaffinity = lambda pid: {0, 1}\n"
             "from rduflow.inference.cli import main\n"
             "sys.exit(main(['simulate', 'tiny-llama', '--arch', 'sn40l', '--sockets', '1', '--prompt', '16',\n"
             "               '--gen', '64', '--quiet']))\n")


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_with_workers():
    proc = subprocess.Popen([sys.executable, "-c", _SIMULATE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) >= 2:
            return proc, workers
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the simulation never started its workers: {proc.communicate()[1]}")


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if _alive(p)}


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


@needs_proc
def test_workers_die_with_a_killed_parent():
    proc, workers = _start_with_workers()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = _wait_gone(workers, 5.0)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "workers outlived their killed parent"


@needs_proc
def test_ctrl_c_is_one_line():
    proc, workers = _start_with_workers()
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == "rduflow: interrupted\n"
    assert not _wait_gone(workers, 5.0)
