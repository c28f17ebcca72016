"""Collectives between GPUs: NCCL's ring on one NVLink node, costed as NCCL's own tuner costs it
(``src/graph/tuning.cc``; docs/gpu-model.md, "Collectives").

Per protocol ``t = base + steps x hop + steps x D/n / bus_bandwidth`` (all-reduce: 2(n-1) steps,
a reduce-scatter then an all-gather; all-gather: n-1); the cheapest protocol is taken, so small
decode messages pay LL's latency floor and large ones LL128's or Simple's bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.compiler.backend.shard_rules import ALL_REDUCE
from rduflow.compiler.target import GpuArch

from .params import DEFAULT_PARAMS, GpuParams


@dataclass(frozen=True)
class CollectiveCost:
    protocol: str
    latency_s: float  # base and per-step hops: what a message of no bytes costs
    wire_s: float  # the bytes over NVLink at the protocol's bus bandwidth
    traffic_bytes: float  # sent per GPU

    @property
    def seconds(self) -> float:
        return self.latency_s + self.wire_s


def collective_cost(arch: GpuArch, gpus: int, kind: str, nbytes: float,
                    params: GpuParams = DEFAULT_PARAMS) -> CollectiveCost:
    """``kind`` (all_reduce or all_gather) of a ``nbytes`` tensor across ``gpus`` GPUs."""
    steps = 2 * (gpus - 1) if kind == ALL_REDUCE else gpus - 1
    traffic = steps * nbytes / gpus
    link = arch.peer_link_gb_s * params.link_efficiency  # NVLink, or PCIe on a card without it
    costs = []
    for proto in params.nccl_protocols:
        share = proto.reduce_bw if kind == ALL_REDUCE else proto.gather_bw
        bus = min(link * share, proto.cap_gb_s) * 1e9
        costs.append(CollectiveCost(proto.name, (proto.base_us + steps * proto.hop_us) * 1e-6, traffic / bus, traffic))
    return min(costs, key=lambda c: c.seconds)
