"""The GPU model: the same imported graph as the RDU compiler takes, run as a GPU inference
stack would run it (fused attention, GEMM epilogues, tensor parallelism over NVLink).

    from rduflow.simulator.gpu import GpuProgram
    prog = GpuProgram(module)                     # kernels formed once
    r = prog.run("h100-sxm", gpus=8, bindings={"batch": 1, "seq": 1, "past": 1024})
    r.total_s, r.hbm_bytes, r.time_by_kind()

See docs/gpu-model.md for the kernel rules, the cost model and every constant.
"""

from .collectives import CollectiveCost, collective_cost
from .errors import GpuModelError
from .kernels import Formation, Kernel, form_kernels
from .params import DEFAULT_PARAMS, GpuParams, NcclProtocol
from .program import GpuProgram, GpuResult, GpuTotals, KernelRun, simulate_gpu

__all__ = ["DEFAULT_PARAMS", "CollectiveCost", "Formation", "GpuModelError", "GpuParams", "GpuProgram", "GpuResult", "GpuTotals", "Kernel",
           "KernelRun", "NcclProtocol", "collective_cost", "form_kernels",
           "simulate_gpu"]
