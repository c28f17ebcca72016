"""The discrete-event core: units fire on tiles, channels carry them, resources are shared.

Vidur-style event heap, ordered by (time, kind, sequence number) so that runs are
deterministic; DAM-style units connected by bounded, latency-annotated channels.

* A **unit** fires ``n`` times per call. Firing ``k`` needs, on each input channel with
  ``t`` tiles per call, ``ceil((k+1) t / n)`` tiles received in total, and when it ends it
  has produced ``floor((k+1) t / n)`` tiles on each output channel: a unit consumes and
  produces in proportion to its progress (a reduction emits at the end, a broadcast input
  is taken at the start). A firing lasts the unit's service time.
* A **channel** holds at most ``capacity`` tiles between the producer handing a tile over
  and the consumer taking it (credit flow control), so a slow consumer stalls its producer
  (backpressure). A tile crosses the channel's resources in order, cut-through.
* A **resource** (HBM, DDR, AGCU, mesh link, socket link, PMU write port) serves
  ``bytes / rate`` per tile, first come first served. A tile crosses its channel's
  resources cut-through: it reaches the next one when the previous one starts serving it,
  and waits in line where one is busy.

Time is in nanoseconds. A looped call of ``m`` iterations is the same program with every
unit firing ``m * n`` times; per-iteration figures are kept so that the caller can
extrapolate a long loop from a few iterations.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from .errors import SimulationError
from .plan import SectionPlan

_DELIVER, _HOP, _DONE = 0, 1, 2
_IDLE, _IN, _OUT, _BUSY, _FINISHED = range(5)
_TIMELINE_TIERS = ("hbm", "ddr", "socket")


class _Res:
    __slots__ = ("key", "tier", "rate", "free", "bytes", "busy", "spans")

    def __init__(self, key: str, tier: str, rate: float, iters: int):
        self.key, self.tier, self.rate = key, tier, rate
        self.free = 0.0  # when the last tile booked here has been served
        self.bytes = [0] * iters
        self.busy = [0.0] * iters
        self.spans: list[tuple[float, float, int]] | None = [] if tier in _TIMELINE_TIERS else None

    def book(self, now: float, size: float, it: int) -> float:
        """Queue ``size`` bytes behind what is already booked; return when serving starts."""
        start = self.free if self.free > now else now
        d = size / self.rate
        self.free = start + d
        self.bytes[it] += size
        self.busy[it] += d
        if self.spans is not None:
            self.spans.append((start, start + d, size))
        return start


class _Ch:
    __slots__ = ("plan", "src", "dst", "t", "sizes", "credits", "sent", "arrived", "consumed", "produced",
                 "latency", "route", "last")

    def __init__(self, plan, route):
        self.plan = plan
        self.t = plan.tiles
        self.sizes = plan.sizes
        self.credits = plan.capacity
        self.sent = self.arrived = self.consumed = self.produced = 0
        self.latency = plan.latency_ns
        self.route = route
        self.last = 0.0


class _Unit:
    __slots__ = ("plan", "n", "total", "service", "ins", "outs", "pending", "npending", "k", "state", "since",
                 "res", "res_bytes", "carry", "readers", "busy", "stall_in", "stall_out", "first", "last", "spans")

    def __init__(self, plan, iters: int, trace: bool):
        self.plan = plan
        self.n = plan.n
        self.total = plan.n * iters
        self.service = plan.service_ns
        self.ins: list[_Ch] = []
        self.outs: list[_Ch] = []
        self.pending: list[int] = []
        self.npending = 0
        self.k = 0
        self.state = _IDLE
        self.since = 0.0
        self.res: _Res | None = None
        self.res_bytes = plan.resource_bytes
        self.carry: _Unit | None = None
        self.readers: list[_Unit] = []
        self.busy = [0.0] * iters
        self.stall_in = [0.0] * iters
        self.stall_out = [0.0] * iters
        self.first: float | None = None
        self.last = 0.0
        self.spans: list[tuple[float, float, str]] | None = [] if trace else None


@dataclass
class UnitRun:
    busy: list[float]  # ns per iteration
    stall_in: list[float]
    stall_out: list[float]
    first_start: float
    last_end: float
    spans: list[tuple[float, float, str]] | None


@dataclass
class ResourceRun:
    tier: str
    rate: float  # bytes per ns
    bytes: list[float]  # per iteration (whole bytes, except a collective's share)
    busy: list[float]  # ns per iteration
    spans: list[tuple[float, float, int]] | None  # (start, end, bytes) of each tile, timeline tiers only


@dataclass
class SectionRun:
    iterations: int
    completion: list[float]  # ns: when each iteration's last firing ended
    units: list[UnitRun]
    resources: dict[str, ResourceRun]
    events: int = 0
    channel_bytes: list[int] = field(default_factory=list)  # bytes delivered per channel, all iterations

    @property
    def end(self) -> float:
        return self.completion[-1] if self.completion else 0.0


def run_section(plan: SectionPlan, iterations: int = 1, trace: bool = False) -> SectionRun:
    return _Engine(plan, iterations, trace).run()


class _Engine:
    def __init__(self, plan: SectionPlan, iters: int, trace: bool):
        self.plan, self.iters = plan, iters
        self.res = {k: _Res(k, r.tier, r.bytes_per_ns, iters) for k, r in plan.resources.items()}
        self.units = [_Unit(u, iters, trace) for u in plan.units]
        self.chans = []
        for c in plan.channels:
            ch = _Ch(c, tuple(self.res[k] for k in c.route))
            ch.src, ch.dst = self.units[c.src], self.units[c.dst]
            ch.src.outs.append(ch)
            ch.src.pending.append(0)
            ch.dst.ins.append(ch)
            self.chans.append(ch)
        for u in self.units:
            if u.plan.resource is not None:
                u.res = self.res[u.plan.resource]
            if u.plan.carried_from is not None:
                u.carry = self.units[u.plan.carried_from]
                u.carry.readers.append(u)
        self.heap: list = []
        self.seq = 0
        self.completion = [0.0] * iters

    def push(self, t: float, kind: int, obj) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, obj))

    def run(self) -> SectionRun:
        for u in self.units:
            self.advance(u, 0.0)
        heap = self.heap
        pop = heapq.heappop
        while heap:
            t, kind, _, obj = pop(heap)
            if kind == _DELIVER:
                obj.arrived += 1
                self.advance(obj.dst, t)
            elif kind == _HOP:
                self.hop(*obj[:4], t, obj[4])
            else:
                obj.state = _IDLE
                self.complete(obj, t)
                self.advance(obj, t)
        stuck = [u for u in self.units if u.k < u.total or u.npending]
        if stuck:
            raise SimulationError(f"section '{self.plan.name}' deadlocks: " + "; ".join(self.why(u) for u in stuck[:4]))
        return SectionRun(
            self.iters, self.completion,
            [UnitRun(u.busy, u.stall_in, u.stall_out, u.first if u.first is not None else 0.0, u.last, u.spans)
             for u in self.units],
            {k: ResourceRun(r.tier, r.rate, r.bytes, r.busy, r.spans) for k, r in self.res.items()},
            self.seq, [sum(ch.sizes[j % ch.t] for j in range(ch.arrived)) for ch in self.chans])

    def why(self, u: _Unit) -> str:
        if u.npending:
            full = [ch.plan.name for ch, p in zip(u.outs, u.pending) if p]
            return f"'{u.plan.name}' cannot hand tiles to {', '.join(full)} (full)"
        k = u.k
        short = [f"{ch.plan.name} ({ch.arrived} of {-(-(k + 1) * ch.t // u.n)} tiles)"
                 for ch in u.ins if ch.arrived < -(-(k + 1) * ch.t // u.n)]
        if u.carry is not None and not short:
            short = [f"'{u.carry.plan.name}' of the previous call"]
        return f"'{u.plan.name}' waits for {', '.join(short) or 'nothing'} before firing {k + 1} of {u.total}"

    # -- units ---------------------------------------------------------------------------------
    def advance(self, u: _Unit, now: float) -> None:
        """Move ``u`` on as far as it can at ``now``: hand over outputs, take inputs, fire."""
        while True:
            if u.state == _BUSY or u.state == _FINISHED:
                return
            if u.npending:
                for i, ch in enumerate(u.outs):
                    while u.pending[i] and ch.credits:
                        u.pending[i] -= 1
                        u.npending -= 1
                        self.send(ch, now)
                if u.npending:
                    if u.state != _OUT:
                        u.state, u.since = _OUT, now
                    return
            if u.state == _OUT:
                u.stall_out[(u.k - 1) // u.n] += now - u.since
                if u.spans is not None and now > u.since:
                    u.spans.append((u.since, now, "stall out"))
                u.state = _IDLE
            k = u.k
            if k == u.total:
                u.state = _FINISHED
                return
            n = u.n
            ready = True
            for ch in u.ins:
                if ch.arrived < -(-(k + 1) * ch.t // n):
                    ready = False
                    break
            if ready and u.carry is not None:
                w = u.carry
                ready = w.k >= -(-(k + 1) * w.n // n) - w.n
            if not ready:
                if u.state != _IN:
                    u.state, u.since = _IN, now
                return
            it = k // n
            if u.state == _IN:
                u.stall_in[it] += now - u.since
                if u.spans is not None and now > u.since:
                    u.spans.append((u.since, now, "stall in"))
                u.state = _IDLE
            woken = []
            for ch in u.ins:
                need = -(-(k + 1) * ch.t // n)
                if need > ch.consumed:
                    ch.credits += need - ch.consumed
                    ch.consumed = need
                    woken.append(ch.src)
            end = now + u.service
            if u.res is not None:
                start = u.res.book(now, u.res_bytes, it)
                end = max(end, start + u.res_bytes / u.res.rate)
            if u.first is None:
                u.first = now
            u.busy[it] += end - now
            if u.spans is not None and end > now:
                u.spans.append((now, end, "busy"))
            if end > now:
                u.state = _BUSY
                self.push(end, _DONE, u)
                for p in woken:
                    self.advance(p, now)
                return
            self.complete(u, now)
            for p in woken:
                self.advance(p, now)

    def complete(self, u: _Unit, t: float) -> None:
        k = u.k = u.k + 1
        n = u.n
        for i, ch in enumerate(u.outs):
            target = k * ch.t // n
            if target > ch.produced:
                u.pending[i] += target - ch.produced
                u.npending += target - ch.produced
                ch.produced = target
        u.last = t
        if k % n == 0 and t > self.completion[k // n - 1]:
            self.completion[k // n - 1] = t
        for r in u.readers:
            self.advance(r, t)

    # -- channels ------------------------------------------------------------------------------
    def send(self, ch: _Ch, now: float) -> None:
        ch.credits -= 1
        j = ch.sent
        ch.sent = j + 1
        self.hop(ch, ch.sizes[j % ch.t], j // ch.t, 0, now, now)

    def hop(self, ch: _Ch, size: int, it: int, i: int, now: float, end: float) -> None:
        """Take a tile through its route from hop ``i`` on, cut-through: it enters the next
        resource as soon as the previous one starts serving it. A busy resource queues it;
        the rest of the route is taken when that resource starts serving it."""
        route = ch.route
        while i < len(route):
            r = route[i]
            start = r.book(now, size, it)
            if start + size / r.rate > end:
                end = start + size / r.rate
            i += 1
            if start > now:
                self.push(start, _HOP, (ch, size, it, i, end))
                return
        arrive = end + ch.latency
        if arrive < ch.last:
            arrive = ch.last  # tiles of one channel arrive in order
        ch.last = arrive
        self.push(arrive, _DELIVER, ch)
