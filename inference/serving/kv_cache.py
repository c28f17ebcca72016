"""The paged KV cache: fixed-size blocks, prefix caching on hashed blocks, LRU eviction.

Follows vLLM's V1 ``KVCacheManager`` and ``BlockPool`` (vllm/v1/core/kv_cache_manager.py,
block_pool.py): a sequence holds ceil(tokens / block_size) blocks; a block that is full gets
a hash of its content (chained from the first token), and a later request whose prompt
starts with the same content reuses it instead of computing it. Freed blocks keep their
content until they are needed: free blocks form a queue, least recently freed first, and
taking a cached one from it evicts its hash. A prefix hit never covers a request's last
prompt token (the step must compute at least one token to produce logits).

An offload tier (vLLM's KV offloading to CPU memory; on an RDU its DDR, which is what it is
for) keeps blocks evicted from the device cache, least recently stored dropped first when
full; a prefix lookup that runs past the device's blocks continues there, and the blocks it
finds are copied back (``loaded``, priced by the engine at the tier's bandwidth) instead of
recomputed.

Content stands in for tokens here: a request's first ``prefix_tokens`` tokens are those of
its ``prefix_id`` group, the rest of its prompt those of its ``prompt_id`` (when it repeats a
prompt of a pool), the rest its own; so block ``i`` of a request is shared exactly when it
lies wholly inside a shared part.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .workload import Request


@dataclass(eq=False)
class Sequence:
    """A request inside the engine."""

    req: Request
    num_tokens: int  # prompt plus tokens generated so far
    sent_s: float  # when the client sent it (its arrival, or in a closed loop when a slot freed)
    computed: int = 0  # tokens whose KV is in the cache
    generated: int = 0
    blocks: int = 0  # blocks held
    hashes: list = field(default_factory=list)  # hashes of its full blocks it holds a reference to
    preemptions: int = 0
    first_scheduled_s: float | None = None
    token_times: list[float] = field(default_factory=list)
    finished_s: float | None = None


class KVCache:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool, offload_blocks: int = 0):
        self.num_blocks, self.block_size, self.prefix_caching = num_blocks, block_size, prefix_caching
        self.fresh = num_blocks  # free blocks holding no cached content
        self.evictable: OrderedDict = OrderedDict()  # free blocks with content, least recently freed first
        self.refs: dict = {}  # content hash -> sequences holding that block
        self.offload_blocks = offload_blocks if prefix_caching else 0
        self.offloaded: OrderedDict = OrderedDict()  # hashes in the offload tier, least recently stored first
        # Prompt tokens admitted, and of them found cached (on the device or in the offload tier),
        # and of those found in the offload tier: counted when a sequence is admitted.
        self.hits = self.queries = 0
        self.offload_hits = 0
        self.loaded = 0  # blocks copied back from the offload tier, since the engine last took the count

    @property
    def free(self) -> int:
        return self.fresh + len(self.evictable)

    @property
    def used(self) -> int:
        return self.num_blocks - self.free

    def block_hash(self, seq: Sequence, i: int):
        r = seq.req
        end = (i + 1) * self.block_size
        if r.prefix_id is not None and end <= r.prefix_tokens:
            return ("p", r.prefix_id, i)
        if r.prompt_id is not None and end <= r.input_tokens:
            return ("q", r.prompt_id, i)
        return ("r", r.id, i)

    def cached_blocks(self, seq: Sequence) -> list:
        """The hashes of the longest run of ``seq``'s leading blocks already cached (none are taken)."""
        if not self.prefix_caching:
            return []
        out = []
        for i in range((seq.num_tokens - 1) // self.block_size):
            h = self.block_hash(seq, i)
            if h not in self.refs and h not in self.evictable and h not in self.offloaded:
                break
            out.append(h)
        return out

    def admit(self, seq: Sequence, hit: list, new_tokens: int) -> bool:
        """Take the cached blocks ``hit`` and room for ``new_tokens`` more, or nothing."""
        bs = self.block_size
        need = -(-(len(hit) * bs + new_tokens) // bs) - len(hit)
        from_free = sum(1 for h in hit if h in self.evictable)
        load = [h for h in hit if h not in self.refs and h not in self.evictable]  # in the offload tier
        if need + from_free + len(load) > self.free:
            return False
        if self.prefix_caching:  # counted once per admission, as the tokens it starts with
            self.queries += seq.num_tokens
            self.hits += len(hit) * bs
        for h in hit:  # claim the cached blocks first: taking free blocks must not evict them
            if h in self.evictable:
                del self.evictable[h]
                self.refs[h] = 1
            elif h in self.refs:
                self.refs[h] += 1
        seq.hashes = list(hit)
        seq.blocks = len(hit) - len(load)
        seq.computed = len(hit) * bs
        if load:
            self._take(seq, len(load))  # device blocks the offloaded ones are copied into
            for h in load:
                self.refs[h] = 1
            self.loaded += len(load)
            self.offload_hits += len(load) * bs
        return self._take(seq, need)

    def grow(self, seq: Sequence, new_tokens: int) -> bool:
        """Room for ``new_tokens`` more tokens of a running sequence, or nothing."""
        need = -(-(seq.computed + new_tokens) // self.block_size) - seq.blocks
        if need <= 0:
            return True
        if need > self.free:
            return False
        return self._take(seq, need)

    def _take(self, seq: Sequence, n: int) -> bool:
        for _ in range(n):
            if self.fresh:
                self.fresh -= 1
            else:
                h, _ = self.evictable.popitem(last=False)  # the least recently freed cached block
                if self.offload_blocks:
                    self.offloaded[h] = None  # evicted to the offload tier
                    self.offloaded.move_to_end(h)
                    if len(self.offloaded) > self.offload_blocks:
                        self.offloaded.popitem(last=False)
        seq.blocks += n
        return True

    def computed(self, seq: Sequence) -> None:
        """``seq.computed`` advanced: its newly full blocks become cached content."""
        if not self.prefix_caching:
            return
        full = seq.computed // self.block_size
        for i in range(len(seq.hashes), full):
            h = self.block_hash(seq, i)
            if h in self.refs:
                # Computed twice (two requests raced on one prefix): keep one copy cached, and
                # this sequence's block stays its own, unshared and uncached.
                seq.hashes.append(None)
                continue
            if h in self.evictable:
                del self.evictable[h]
                self.fresh += 1  # the stale copy's block is plain free space now
            self.refs[h] = 1
            seq.hashes.append(h)

    def release(self, seq: Sequence) -> None:
        """Free all of ``seq``'s blocks (finished or preempted); cached content stays findable,
        the sequence's last blocks first in line for eviction (vLLM frees in reverse order)."""
        plain = seq.blocks
        for h in reversed(seq.hashes):
            if h is None:
                continue
            plain -= 1
            n = self.refs[h] - 1
            if n:
                self.refs[h] = n
            else:
                del self.refs[h]
                self.evictable[h] = None
        self.fresh += plain
        seq.blocks, seq.hashes = 0, []
