"""The discrete-event core: units fire on tiles, channels carry them, resources are shared.

Vidur-style event heap, ordered by (time, kind, sequence number) so that runs are
deterministic; DAM-style units connected by bounded, latency-annotated channels.

* A **unit** fires ``n`` times per call. Firing ``k`` needs, on each input channel with
  ``t`` tiles per call, ``ceil((k+1) t / n)`` tiles received in total, and when it ends it
  has produced ``floor((k+1) t / n)`` tiles on each output channel: a unit consumes and
  produces in proportion to its progress (a reduction emits at the end, a broadcast input
  is taken at the start). A firing lasts the unit's service time; its outputs appear the
  unit's latency later (pipeline depth, a collective's network steps) while the unit may
  already fire again. It holds the outputs of at most ``depth`` firings: firing ``k`` waits
  until firing ``k - depth`` has handed its outputs over, a fixed-index condition, so that
  without shared resources every event is a max of earlier events plus constants (more
  buffering or bandwidth can then never make anything later).
* A **channel** holds at most ``capacity`` tiles between the producer handing a tile over
  and the consumer taking it (credit flow control), so a slow consumer stalls its producer
  (backpressure). Its tiles cross its resources in order, cut-through: a tile reaches the
  next resource when the previous one starts serving it. It is delivered ``latency`` after
  its last byte has crossed every resource.
* A **resource** (HBM, DDR, AGCU, mesh link, socket link, PMU write port) serves one tile at
  a time, ``bytes / rate`` each. Tiles that find it busy wait; when it frees, it serves the
  waiting stream it served least recently (a fair arbiter, as memory controllers and
  switches use), oldest tile first within a stream.

Time is in nanoseconds. A looped call of ``m`` iterations is the same program with every
unit firing ``m * n`` times; per-iteration figures are kept so that the caller can
extrapolate a long loop from a few iterations.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from .errors import SimulationError
from .netlist import Netlist

_DELIVER, _READY, _FREE, _DONE = 0, 1, 2, 3
_IDLE, _IN, _OUT, _BUSY, _FINISHED = range(5)
_TIMELINE_TIERS = ("hbm", "ddr", "socket")


class _Xfer:
    """One tile (or a collective firing's bytes) on its way across a route."""

    __slots__ = ("flow", "route", "size", "it", "i", "end", "ch", "unit")

    def __init__(self, flow: int, route: tuple, size: float, it: int, now: float, ch=None, unit=None):
        self.flow, self.route, self.size, self.it = flow, route, size, it
        self.i = 0
        self.end = now
        self.ch, self.unit = ch, unit


class _Res:
    __slots__ = ("key", "tier", "rate", "free", "waiting", "order", "served", "scheduled", "bytes", "busy", "spans")

    def __init__(self, key: str, tier: str, rate: float, iters: int):
        self.key, self.tier, self.rate = key, tier, rate
        self.free = 0.0  # when the tile being served is done
        self.waiting: dict[int, deque[_Xfer]] = {}  # flow -> its waiting tiles, oldest first
        self.order: list[tuple[int, int]] = []  # heap of (last served, flow) over waiting flows
        self.served: dict[int, int] = {}  # flow -> when it was last served (a counter)
        self.scheduled = False  # a _FREE event is pending
        self.bytes = [0] * iters
        self.busy = [0.0] * iters
        self.spans: list[tuple[float, float, float]] | None = [] if tier in _TIMELINE_TIERS else None

    def wait(self, x: _Xfer) -> None:
        q = self.waiting.get(x.flow)
        if q is None:
            q = self.waiting[x.flow] = deque()
            heapq.heappush(self.order, (self.served.get(x.flow, -1), x.flow))
        q.append(x)

    def next(self, counter: int) -> _Xfer:
        _, flow = heapq.heappop(self.order)
        q = self.waiting[flow]
        x = q.popleft()
        self.served[flow] = counter
        if q:
            heapq.heappush(self.order, (counter, flow))
        else:
            del self.waiting[flow]
        return x

    def serve(self, x: _Xfer, now: float) -> None:
        d = x.size / self.rate
        self.free = now + d
        self.bytes[x.it] += x.size
        self.busy[x.it] += d
        if self.spans is not None:
            self.spans.append((now, now + d, x.size))
        if now + d > x.end:
            x.end = now + d
        x.i += 1


class _Ch:
    __slots__ = ("net", "idx", "src", "dst", "t", "sizes", "credits", "sent", "arrived", "consumed", "produced",
                 "latency", "route", "last")

    def __init__(self, net, idx: int, route: tuple):
        self.net, self.idx = net, idx
        self.t = net.tiles
        self.sizes = net.sizes
        self.credits = net.capacity
        self.sent = self.arrived = self.consumed = self.produced = 0
        self.latency = net.latency_ns
        self.route = route
        self.last = 0.0


class _Unit:
    __slots__ = ("net", "idx", "n", "depth", "total", "service", "latency", "ins", "outs", "pending", "npending", "inflight",
                 "k", "state", "since", "route", "res_bytes", "fire_end", "carry", "readers", "busy", "stall_in",
                 "stall_out", "first", "last", "last_out", "spans")

    def __init__(self, net, idx: int, iters: int, trace: bool):
        self.net, self.idx = net, idx
        self.n = net.n
        self.total = net.n * iters
        self.service = net.service_ns
        self.latency = net.out_latency_ns  # outputs appear this long after a firing ends
        self.ins: list[_Ch] = []
        self.outs: list[_Ch] = []
        self.pending: list[int] = []
        self.npending = 0
        self.inflight = 0  # firings whose outputs are still in the unit's pipeline
        self.k = 0
        self.state = _IDLE
        self.since = 0.0
        self.route: tuple = ()  # resources a firing's bytes cross (a collective's socket link)
        self.res_bytes = net.resource_bytes
        self.fire_end = 0.0  # the earliest a firing can end (its service time)
        self.carry: _Unit | None = None
        self.readers: list[_Unit] = []
        self.depth = net.depth
        self.busy = [0.0] * iters
        self.stall_in = [0.0] * iters
        self.stall_out = [0.0] * iters
        self.first: float | None = None
        self.last = 0.0
        self.last_out = 0.0  # when it last handed a tile to a channel
        self.spans: list[tuple[float, float, str]] | None = [] if trace else None


@dataclass
class UnitRun:
    busy: list[float]  # ns per iteration
    stall_in: list[float]
    stall_out: list[float]
    first_start: float
    last_end: float  # end of its last firing
    last_out: float  # when it handed over its last tile
    spans: list[tuple[float, float, str]] | None


@dataclass
class ResourceRun:
    tier: str
    rate: float  # bytes per ns
    bytes: list[float]  # per iteration (whole bytes, except a collective's share)
    busy: list[float]  # ns per iteration
    spans: list[tuple[float, float, float]] | None  # (start, end, bytes) served, timeline tiers only


@dataclass
class SectionRun:
    iterations: int
    completion: list[float]  # ns: when each iteration's last firing ended
    units: list[UnitRun]
    resources: dict[str, ResourceRun]
    channel_bytes: list[int]  # bytes delivered per channel, all iterations
    events: int

    @property
    def end(self) -> float:
        return self.completion[-1] if self.completion else 0.0


def run_section(net: Netlist, iterations: int = 1, trace: bool = False) -> SectionRun:
    return _Engine(net, iterations, trace).run()


class _Engine:
    def __init__(self, net: Netlist, iters: int, trace: bool):
        self.net, self.iters = net, iters
        self.res = {k: _Res(k, r.tier, r.bytes_per_ns, iters) for k, r in net.resources.items()}
        self.units = [_Unit(u, i, iters, trace) for i, u in enumerate(net.units)]
        self.chans = []
        for i, c in enumerate(net.channels):
            ch = _Ch(c, i, tuple(self.res[k] for k in c.route))
            ch.src, ch.dst = self.units[c.src], self.units[c.dst]
            ch.src.outs.append(ch)
            ch.src.pending.append(0)
            ch.dst.ins.append(ch)
            self.chans.append(ch)
        for u in self.units:
            if u.net.resource is not None:
                u.route = (self.res[u.net.resource],)
            if u.net.carried_from is not None:
                u.carry = self.units[u.net.carried_from]
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
            t, kind, seq, obj = pop(heap)
            if kind == _DELIVER:
                obj.arrived += 1
                u = obj.dst
                state = u.state
                # Most tiles reach a unit that cannot move on yet; what advance() would find, cheaply:
                if state == _FINISHED or (state == _BUSY and not u.npending):
                    continue
                if (state == _IN and not u.npending and not u.inflight
                        and obj.arrived < -(-(u.k + 1) * obj.t // u.n)):
                    continue  # still short of this channel's tiles for its next firing
                self.advance(u, t)
            elif kind == _READY:
                u, counts = obj
                u.inflight -= 1
                for i, c in enumerate(counts):
                    u.pending[i] += c
                    u.npending += c
                self.advance(u, t)
            elif kind == _FREE:
                obj.scheduled = False
                x = obj.next(seq)
                obj.serve(x, t)
                if obj.waiting:
                    obj.scheduled = True
                    self.push(obj.free, _FREE, obj)
                self.hop(x, t)
            else:
                self.complete(obj, t)
                self.advance(obj, t)
        stuck = [u for u in self.units if u.k < u.total or u.npending or u.inflight]
        if stuck:
            raise SimulationError(f"section '{self.net.name}' deadlocks: " + "; ".join(self.why(u) for u in stuck[:4]))
        return SectionRun(
            iterations=self.iters, completion=self.completion,
            units=[UnitRun(busy=u.busy, stall_in=u.stall_in, stall_out=u.stall_out,
                           first_start=u.first if u.first is not None else 0.0, last_end=u.last,
                           last_out=u.last_out, spans=u.spans) for u in self.units],
            resources={k: ResourceRun(tier=r.tier, rate=r.rate, bytes=r.bytes, busy=r.busy, spans=r.spans)
                       for k, r in self.res.items()},
            channel_bytes=[sum(ch.sizes[j % ch.t] for j in range(ch.arrived)) for ch in self.chans],
            events=self.seq)

    def why(self, u: _Unit) -> str:
        if u.npending:
            full = [ch.net.name for ch, p in zip(u.outs, u.pending) if p]
            return f"'{u.net.name}' cannot hand tiles to {', '.join(full)} (full)"
        k = u.k
        short = [f"{ch.net.name} ({ch.arrived} of {-(-(k + 1) * ch.t // u.n)} tiles)"
                 for ch in u.ins if ch.arrived < -(-(k + 1) * ch.t // u.n)]
        if u.carry is not None and not short:
            short = [f"'{u.carry.net.name}' of the previous call"]
        return f"'{u.net.name}' waits for {', '.join(short) or 'nothing'} before firing {k + 1} of {u.total}"

    # -- units ---------------------------------------------------------------------------------
    def advance(self, u: _Unit, now: float) -> None:
        """Move ``u`` on as far as it can at ``now``: hand over outputs, take inputs, fire."""
        while True:
            if u.state == _FINISHED:
                return
            if u.npending:  # hand over what the channels have room for, busy or not
                pending = u.pending
                for i, ch in enumerate(u.outs):
                    m = pending[i]
                    if m and ch.credits:
                        if ch.credits < m:
                            m = ch.credits
                        pending[i] -= m
                        u.npending -= m
                        for _ in range(m):
                            self.send(ch, now)
            if u.state == _BUSY:
                return
            k = u.k
            held = u.npending if k == u.total else not self.room(u, k)
            if held:
                if u.state == _IN:  # outputs that appeared while it waited for inputs
                    u.stall_in[u.k // u.n] += now - u.since
                    if u.spans is not None and now > u.since:
                        u.spans.append((u.since, now, "stall in"))
                if u.state != _OUT:
                    u.state, u.since = _OUT, now
                return
            if u.state == _OUT:
                u.stall_out[(u.k - 1) // u.n] += now - u.since
                if u.spans is not None and now > u.since:
                    u.spans.append((u.since, now, "stall out"))
                u.state = _IDLE
            if k == u.total:
                if not u.inflight:
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
            if u.state == _IN:
                u.stall_in[k // n] += now - u.since
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
            if u.first is None:
                u.first = now
            if u.route:  # the firing's bytes cross a shared resource: DONE comes when they have
                u.state = _BUSY
                u.since = now
                u.fire_end = now + u.service
                self.hop(_Xfer(-1 - u.idx, u.route, u.res_bytes, k // n, now, unit=u), now)
            elif u.service > 0:
                u.state = _BUSY
                u.since = now
                self.push(now + u.service, _DONE, u)
            else:
                self.complete(u, now)
            for p in woken:
                self.advance(p, now)
            if u.state == _BUSY:
                return

    @staticmethod
    def room(u: _Unit, k: int) -> bool:
        """Firing ``k`` may start once firing ``k - depth`` has handed over its outputs: a
        unit holds the outputs of at most ``depth`` firings (its pipeline), so it stalls on
        a full consumer after a fixed number of firings, whatever the timing."""
        j = k - u.depth
        if j < 0 or not (u.npending or u.inflight):
            return True
        n, done = u.n, j + 1
        for ch in u.outs:
            if ch.sent < done * ch.t // n:
                return False
        return True

    def complete(self, u: _Unit, t: float) -> None:
        k = u.k = u.k + 1
        n = u.n
        it = (k - 1) // n
        if u.state == _BUSY:
            u.state = _IDLE
            u.busy[it] += t - u.since
            if u.spans is not None:
                u.spans.append((u.since, t, "busy"))
        counts = [0] * len(u.outs)
        for i, ch in enumerate(u.outs):
            target = k * ch.t // n
            counts[i] = target - ch.produced
            ch.produced = target
        if u.latency and any(counts):
            u.inflight += 1
            self.push(t + u.latency, _READY, (u, counts))
        else:
            for i, c in enumerate(counts):
                u.pending[i] += c
                u.npending += c
        u.last = t
        if k % n == 0 and t > self.completion[it]:
            self.completion[it] = t
        for r in u.readers:
            self.advance(r, t)

    # -- transfers -----------------------------------------------------------------------------
    def send(self, ch: _Ch, now: float) -> None:
        ch.credits -= 1
        ch.src.last_out = now
        j = ch.sent
        ch.sent = j + 1
        self.hop(_Xfer(ch.idx, ch.route, ch.sizes[j % ch.t], j // ch.t, now, ch=ch), now)

    def hop(self, x: _Xfer, now: float) -> None:
        """Take a transfer on from its next resource, cut-through, until one makes it wait."""
        route = x.route
        i, size, it, end = x.i, x.size, x.it, x.end
        last = len(route)
        while i < last:
            r = route[i]
            if r.free > now or r.waiting:
                x.i, x.end = i, end
                r.wait(x)
                if not r.scheduled:
                    r.scheduled = True
                    self.push(r.free if r.free > now else now, _FREE, r)
                return
            # r.serve(x, now), inlined: this loop is the engine's hottest path
            d = size / r.rate
            done = now + d
            r.free = done
            r.bytes[it] += size
            r.busy[it] += d
            if r.spans is not None:
                r.spans.append((now, done, size))
            if done > end:
                end = done
            i += 1
        self.seq += 1
        ch = x.ch
        if ch is not None:
            arrive = end + ch.latency
            if arrive < ch.last:
                arrive = ch.last  # tiles of one channel arrive in order
            ch.last = arrive
            heapq.heappush(self.heap, (arrive, _DELIVER, self.seq, ch))
        else:
            u = x.unit
            heapq.heappush(self.heap, (end if end > u.fire_end else u.fire_end, _DONE, self.seq, u))
