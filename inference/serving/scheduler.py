"""Schedulers: which sequences run in the next step, and how many tokens each computes.

* :class:`ContinuousScheduler`, vLLM's V1 scheduler (vllm/v1/core/sched/scheduler.py,
  ``Scheduler.schedule``, FCFS policy): one token budget per step
  (``max_num_batched_tokens``); running sequences first, in order, each taking what it
  still needs (one token when decoding, the rest of its prompt -- in chunks of what the
  budget leaves -- when prefilling); then waiting ones, oldest first, while the budget,
  ``max_num_seqs`` and the KV cache allow, each starting after its longest cached prefix.
  When a running sequence cannot get a block, the newest running sequence is preempted: it
  loses its blocks and returns to the head of the queue, to recompute its prompt and the
  tokens it has generated (vLLM V1 preempts by recomputation only). No new sequence is
  admitted in a step that preempted. Without chunked prefill a prompt that does not fit
  the remaining budget waits for a later step.
* :class:`StaticScheduler`: a batch of up to ``max_num_seqs`` waiting requests is prefilled
  at once and decoded until its last sequence finishes; requests arriving meanwhile wait
  (the baseline continuous batching was introduced against: Yu et al., Orca, OSDI 2022).
* :class:`BucketScheduler`: static batching as a static-shape compiler serves it, padded
  to a compiled (batch, length) bucket; see its docstring.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from .batch import Chunk, Program, StepBatch
from .config import EngineConfig
from .kv_cache import KVCache, Sequence
from .workload import Request


@dataclass
class Scheduled:
    """One step: the batch to price and, per sequence, the tokens it computes."""

    batch: StepBatch
    work: list[tuple[Sequence, int]]
    preempted: int = 0
    model: str | None = None  # with several models on the devices: the one this step runs


def _batch(work: list[tuple[Sequence, int]], program: Program | None = None) -> StepBatch:
    decodes = context = 0
    chunks = []
    for s, n in work:
        if n == 1 and s.computed > 0:
            decodes += 1
            context += s.computed
        else:
            chunks.append(Chunk(n, s.computed))
    return StepBatch(decodes, context, tuple(chunks), program)


class _Queues:
    """What every scheduler keeps: the waiting queue and the running set over one KV cache."""

    def __init__(self, cfg: EngineConfig, kv: KVCache):
        self.cfg, self.kv = cfg, kv
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def finished(self, s: Sequence) -> None:
        self.running.remove(s)
        self.kv.release(s)

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)


class ContinuousScheduler(_Queues):
    def schedule(self) -> Scheduled:
        kv, cfg = self.kv, self.cfg
        budget = cfg.max_num_batched_tokens
        work: list[tuple[Sequence, int]] = []
        waiting_before = len(self.waiting)
        running = self.running
        bs = kv.block_size
        i = 0
        while i < len(running) and budget > 0:
            s = running[i]
            n = min(s.num_tokens - s.computed, budget)
            # Most decode steps fit the blocks the sequence holds; only the others need room.
            if s.computed + n > s.blocks * bs and not self._room(s, n):
                break  # s itself was preempted: nothing after it runs either
            work.append((s, n))
            budget -= n
            i += 1
        preempted = len(self.waiting) - waiting_before  # the running loop only adds preempted ones
        if not preempted:
            while self.waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                s = self.waiting[0]
                hit = kv.cached_blocks(s)
                n = s.num_tokens - len(hit) * kv.block_size
                if not cfg.enable_chunked_prefill and n > budget:
                    break
                n = min(n, budget)
                if not kv.admit(s, hit, n):
                    break
                self.waiting.popleft()
                running.append(s)
                work.append((s, n))
                budget -= n
        return Scheduled(_batch(work), work, preempted)

    def _room(self, s: Sequence, n: int) -> bool:
        """Blocks for ``n`` more tokens of ``s``, preempting the newest running sequences until
        they fit; False when ``s`` itself had to go."""
        while not self.kv.grow(s, n):
            victim = self.running.pop()
            self._preempt(victim)
            if victim is s:
                return False
        return True

    def _preempt(self, s: Sequence) -> None:
        self.kv.release(s)
        s.computed = 0
        s.preemptions += 1
        self.waiting.appendleft(s)


class StaticScheduler(_Queues):
    """Whole batches: admitted together (each with room for its whole output reserved, so
    nothing is preempted), prefilled in one step, decoded until the last one finishes."""

    def __init__(self, cfg: EngineConfig, kv: KVCache):
        super().__init__(cfg, kv)
        self.batch_size = 0  # sequences in the current batch, finished ones included
        self.model: str | None = None  # the current batch's model

    def _admit(self) -> list[Sequence]:
        """The oldest waiting requests for the oldest one's model, in arrival order (a batch
        runs one model: with several on the devices, the others wait for their turn)."""
        out: list[Sequence] = []
        if not self.waiting:
            return out
        model = self.waiting[0].req.model
        kept: deque[Sequence] = deque()
        while self.waiting and len(out) < self.max_batch:
            s = self.waiting.popleft()
            if s.req.model != model:
                kept.append(s)
                continue
            if not self.kv.admit(s, [], s.req.input_tokens + s.req.output_tokens):
                self.waiting.appendleft(s)
                break
            s.computed = 0
            out.append(s)
        self.waiting.extendleft(reversed(kept))
        return out

    @property
    def max_batch(self) -> int:
        return self.cfg.max_num_seqs

    def schedule(self) -> Scheduled:
        if not self.running:
            self.running = self._admit()
            self.batch_size = len(self.running)
            self.model = self.running[0].req.model if self.running else None
            return Scheduled(self._program_batch([(s, s.num_tokens) for s in self.running], prefill=True),
                             [(s, s.num_tokens) for s in self.running], model=self.model)
        work = [(s, 1) for s in self.running]
        return Scheduled(self._program_batch(work, prefill=False), work, model=self.model)

    def _program_batch(self, work: list[tuple[Sequence, int]], prefill: bool) -> StepBatch:
        return _batch(work)


class BucketScheduler(StaticScheduler):
    """Static batches padded to compiled shapes, as on SambaNova's RDUs.

    SambaNova's compiler produces static-shape programs, and its serving stack runs a
    program per (batch size, sequence length) bucket, padding requests up to the bucket
    (SambaNova documentation: "dynamic batching" chooses among the batch sizes a model
    was compiled for; docs/serving.md cites it). A batch is the oldest waiting requests, up
    to the largest compiled batch size, padded to the smallest batch bucket that holds them;
    its prefill runs the program for the longest prompt's length bucket, and every decode
    step the program for the length bucket holding its longest prompt plus output (the
    cache is laid out at that static length, so attention reads all of it). The batch runs
    until its longest request is done; finished requests ride along as padding.
    """

    @property
    def max_batch(self) -> int:
        return min(self.cfg.max_num_seqs, self.cfg.batch_buckets[-1])

    def fits(self, req: Request) -> bool:
        return req.input_tokens + req.output_tokens <= self.cfg.seq_buckets[-1]

    def _program_batch(self, work: list[tuple[Sequence, int]], prefill: bool) -> StepBatch:
        cfg = self.cfg
        b = cfg.batch_buckets[bisect.bisect_left(cfg.batch_buckets, self.batch_size)]
        if prefill:
            longest = max(s.req.input_tokens for s, _ in work)
            program = Program(b, _bucket(cfg.seq_buckets, longest), 0)
        else:
            longest = max(s.req.input_tokens + s.req.output_tokens for s, _ in work)
            program = Program(b, 1, _bucket(cfg.seq_buckets, longest))
        return _batch(work, program)


def _bucket(buckets: tuple[int, ...], n: int) -> int:
    return buckets[bisect.bisect_left(buckets, n)]


def make_scheduler(cfg: EngineConfig, kv: KVCache):
    return {"vllm": ContinuousScheduler, "static": StaticScheduler, "buckets": BucketScheduler}[cfg.scheduler](cfg, kv)
