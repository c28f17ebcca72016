"""Benchmark: simulate one decode step of a 70B-class model on 8 SN40L sockets.

The placed program is built here with the placed-program builder (until the compiler back
end produces it): Llama-3-70B dimensions, tensor parallel over the sockets, batch 1, one
fused kernel per decoder layer (repeated 80 times), weights streamed from HBM through all
16 AGCUs into PMU buffers big enough to hold a layer's weights (so the next layer's weights
stream in while this one computes), two all-reduces per layer, then the LM head.

    python benchmarks/sim_decode.py [--layers 80] [--sockets 8] [--context 4096] [--runs 3]

Prints the wall time of ``simulate`` (best of ``--runs``) and the simulated figures.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from rduflow.ir import TensorType
from rduflow.simulator import PlacedProgram, RduArch, load_arch, simulate
from rduflow.simulator.builder import SectionBuilder

BF16 = "bf16"


@dataclass(frozen=True)
class Dims:
    """Llama-3-70B."""

    hidden: int = 8192
    layers: int = 80
    heads: int = 64
    kv_heads: int = 8
    head_dim: int = 128
    ffn: int = 28672
    vocab: int = 128256


class Placer:
    """Hands out free PCU and PMU sites nearest a point of the grid (a toy placer)."""

    def __init__(self, arch: RduArch):
        g = arch.grid
        self.arch = arch
        self.free = {(r, c) for r in range(g.rows) for c in range(g.cols)}
        self.center = (g.rows // 2, g.cols // 2)
        self.next_agcu = 0

    def take(self, n: int, near: tuple[int, int], pcu: bool) -> list[list[int]]:
        sites = sorted((s for s in self.free if self.arch.is_pcu_site(*s) == pcu),
                       key=lambda s: (abs(s[0] - near[0]) + abs(s[1] - near[1]), s))[:n]
        self.free.difference_update(sites)
        return [list(s) for s in sites]

    def agcu(self) -> int:
        i = self.next_agcu
        self.next_agcu = (i + 1) % self.arch.agcu.count
        return i


def weight_matmul(sec: SectionBuilder, pl: Placer, name: str, x, k: int, n: int, shards: int,
                  tiles: int, pmus: int, pcus: int):
    """x @ W with W[k, n] streamed from HBM as ``shards`` row blocks, each through its own
    AGCU and PMU buffer, concatenated inside the matmul unit."""
    ins = [sec.stream(x, 1)]
    cap = pmus * pl.arch.pmu_bytes
    sites = []
    for i in range(shards):
        a = pl.agcu()
        edge = pl.arch.agcu_coord(a)
        w = sec.mem_read(f"{name}.w{i}", TensorType([k // shards, n], BF16), agcu=a)
        buf = sec.buffer(sec.stream(w, tiles), pmus=pmus, capacity=cap,
                         coords=pl.take(pmus, edge, pcu=False), name=f"{name}.buf{i}")
        ins.append(sec.stream(buf, tiles))
        # This shard's PCUs sit in its AGCU's column, so its stream runs straight along it.
        sites += pl.take(pcus // shards, (pl.center[0], edge[1]), pcu=True)

    def body(b, x, *ws):
        w = b.emit("concat", *ws, axis=0) if len(ws) > 1 else ws[0]
        return b.emit("matmul", x, w)

    sites += pl.take(pcus - len(sites), pl.center, pcu=True)
    return sec.compute(name, ins, body, pcus=pcus, coords=sites)


def small_read(sec: SectionBuilder, pl: Placer, tensor: str, shape: list[int], **kw):
    return sec.mem_read(tensor, TensorType(shape, BF16), agcu=pl.agcu(), **kw)


def decoder_layer(prog: PlacedProgram, arch: RduArch, d: Dims, sockets: int, context: int) -> None:
    pl = Placer(arch)
    sec = prog.section("decoder", repeat=d.layers)
    hq, hk, hd = d.heads // sockets, max(1, d.kv_heads // sockets), d.head_dim
    f = d.ffn // sockets
    qkv_n = (hq + 2 * hk) * hd
    h = small_read(sec, pl, "h", [1, d.hidden], carried=True)
    ln1 = small_read(sec, pl, "ln1", [d.hidden])
    ln2 = small_read(sec, pl, "ln2", [d.hidden])
    n1 = sec.compute("norm1", [sec.stream(h, 1), sec.stream(ln1, 1)], lambda b, x, g: b.emit("rms_norm", x, g),
                     pcus=2, coords=pl.take(2, pl.center, pcu=True))
    qkv = weight_matmul(sec, pl, "qkv", n1, d.hidden, qkv_n, shards=8, tiles=64, pmus=8, pcus=16)
    kc = small_read(sec, pl, "k_cache", [hk, context, hd])
    vc = small_read(sec, pl, "v_cache", [hk, context, hd])

    def attention(b, qkv, k, v):
        q = b.emit("slice", qkv, axes=[1], starts=[0], ends=[hq * hd])
        q = b.emit("reshape", q, shape=[hk, hq // hk, hd])
        kt = b.emit("transpose", k, perm=[0, 2, 1])
        s = b.emit("softmax", b.emit("matmul", q, kt), axis=-1)
        o = b.emit("reshape", b.emit("matmul", s, v), shape=[1, hq * hd])
        k_new = b.emit("slice", qkv, axes=[1], starts=[hq * hd], ends=[(hq + hk) * hd])
        v_new = b.emit("slice", qkv, axes=[1], starts=[(hq + hk) * hd], ends=[qkv_n])
        return [o, k_new, v_new]

    attn, k_new, v_new = sec.compute("attention", [sec.stream(qkv, 1), sec.stream(kc, 32), sec.stream(vc, 32)],
                                     attention, pcus=16, coords=pl.take(16, pl.center, pcu=True))
    sec.mem_write(sec.stream(k_new, 1), "k_cache.new", agcu=pl.agcu())
    sec.mem_write(sec.stream(v_new, 1), "v_cache.new", agcu=pl.agcu())
    o = weight_matmul(sec, pl, "o_proj", attn, hq * hd, d.hidden, shards=8, tiles=64, pmus=8, pcus=16)
    o = sec.collective(sec.stream(o, 1), "all_reduce", group=sockets, agcu=pl.agcu(), name="o_allreduce")
    h1 = sec.compute("residual1", [sec.stream(h, 1), sec.stream(o, 1)], lambda b, x, y: b.emit("add", x, y),
                     pcus=2, coords=pl.take(2, pl.center, pcu=True))
    n2 = sec.compute("norm2", [sec.stream(h1, 1), sec.stream(ln2, 1)], lambda b, x, g: b.emit("rms_norm", x, g),
                     pcus=2, coords=pl.take(2, pl.center, pcu=True))
    gu = weight_matmul(sec, pl, "gate_up", n2, d.hidden, 2 * f, shards=16, tiles=64, pmus=16, pcus=64)

    def swiglu(b, gu):
        g = b.emit("slice", gu, axes=[1], starts=[0], ends=[f])
        u = b.emit("slice", gu, axes=[1], starts=[f], ends=[2 * f])
        return b.emit("mul", b.emit("silu", g), u)

    act = sec.compute("swiglu", [sec.stream(gu, 1)], swiglu, pcus=4, coords=pl.take(4, pl.center, pcu=True))
    down = weight_matmul(sec, pl, "down", act, f, d.hidden, shards=16, tiles=64, pmus=8, pcus=32)
    down = sec.collective(sec.stream(down, 1), "all_reduce", group=sockets, agcu=pl.agcu(), name="down_allreduce")
    h2 = sec.compute("residual2", [sec.stream(h1, 1), sec.stream(down, 1)], lambda b, x, y: b.emit("add", x, y),
                     pcus=2, coords=pl.take(2, pl.center, pcu=True))
    sec.mem_write(sec.stream(h2, 1), "h", agcu=pl.agcu())


def lm_head(prog: PlacedProgram, arch: RduArch, d: Dims, sockets: int) -> None:
    pl = Placer(arch)
    sec = prog.section("lm_head")
    h = small_read(sec, pl, "h", [1, d.hidden])
    g = small_read(sec, pl, "ln_f", [d.hidden])
    n = sec.compute("norm_f", [sec.stream(h, 1), sec.stream(g, 1)], lambda b, x, g: b.emit("rms_norm", x, g),
                    pcus=2, coords=pl.take(2, pl.center, pcu=True))
    logits = weight_matmul(sec, pl, "lm_head", n, d.hidden, d.vocab // sockets, shards=16, tiles=64, pmus=8, pcus=64)
    gathered = sec.collective(sec.stream(logits, 1), "all_gather", group=sockets, agcu=pl.agcu(), name="gather")
    sec.mem_write(sec.stream(gathered, 1), "logits", agcu=pl.agcu())


def build_decode(arch: RduArch, d: Dims = Dims(), sockets: int = 8, context: int = 4096):
    prog = PlacedProgram(sockets=sockets)
    pl = Placer(arch)
    emb = prog.section("embed")
    row = small_read(emb, pl, "embed.row", [1, d.hidden])
    emb.mem_write(emb.stream(row, 1), "h", agcu=pl.agcu())
    decoder_layer(prog, arch, d, sockets, context)
    lm_head(prog, arch, d, sockets)
    return prog.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=80)
    ap.add_argument("--sockets", type=int, default=8)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arch", default="sn40l")
    args = ap.parse_args()
    arch = load_arch(args.arch)
    d = Dims(layers=args.layers)
    t0 = time.perf_counter()
    prog = build_decode(arch, d, args.sockets, args.context)
    build = time.perf_counter() - t0
    walls = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        r = simulate(prog, arch)
        walls.append(time.perf_counter() - t0)
    weights = sum(res.bytes for res in r.resources if res.tier == "hbm")
    print(f"program: {d.layers} layers, {args.sockets} sockets, context {args.context}, built in {build:.3f} s")
    print(f"simulate wall time: best {min(walls):.3f} s of {args.runs} (events simulated: {r.events})")
    print(f"simulated decode step: {r.total_s * 1e3:.3f} ms ({1 / r.total_s:.1f} tokens/s per user)")
    print(f"HBM bytes per socket: {weights / 1e9:.2f} GB, achieved {r.tiers['hbm'].achieved_gb_s:.0f} GB/s "
          f"= {r.tiers['hbm'].utilisation:.1%} of the time busy (peak {r.tiers['hbm'].peak_gb_s:.0f} GB/s)")
    for s in r.sections:
        print(f"  section {s.name}: {s.calls} call(s), {s.end_s - s.start_s:.6f} s, "
              f"per call {s.per_call_s * 1e6:.1f} us, "
              f"bound {s.bound_s / s.calls * 1e6:.1f} us/call by {s.bottleneck}, simulated {s.iterations_simulated}, "
              f"converged {s.converged}")


if __name__ == "__main__":
    main()
