"""Helpers for the simulator tests: round-number overrides and small placed programs."""

from __future__ import annotations

from rduflow.ir import TensorType
from rduflow.simulator import PlacedProgram

# sn40l with round numbers, so that test docstrings can work times out on paper:
# 1 GHz (1 cycle = 1 ns), SIMD f32 at 128 FLOP/cycle/PCU, HBM 1024 B/ns with 100 ns latency,
# DDR 100 B/ns with 600 ns latency, no program load or launch cost.
ROUND = {
    "pcu.clock_ghz": 1.0,
    "pcu.simd_flops_per_cycle": {"f32": 128},
    "pcu.systolic_flops_per_cycle": {"f32": 128},
    "memory.hbm.bandwidth_gb_s": 1024,
    "memory.hbm.latency_ns": 100,
    "memory.ddr.bandwidth_gb_s": 100,
    "memory.ddr.latency_ns": 600,
    "launch.program_load_us": 0,
    "launch.hardware_launch_us": 0,
}


def muls(k: int):
    """A compute body of ``k`` elementwise multiplies: k FLOPs per element, no tail work."""

    def body(b, x):
        y = x
        for _ in range(k):
            y = b.emit("mul", y, x)
        return y

    return body


def copy_program(nbytes: int, tiles: int, depth: int = 0, src: str = "ddr", dst: str = "hbm", repeat: int = 1):
    """mem_read -> mem_write of an f32 tensor of ``nbytes`` bytes."""
    prog = PlacedProgram()
    sec = prog.section("copy", repeat=repeat)
    x = sec.mem_read("x", TensorType([nbytes // 4], "f32"), tier=src)
    sec.mem_write(sec.stream(x, tiles, depth=depth), "y", tier=dst)
    return prog.finish()
