"""The paged KV cache and the schedulers on their own (no step model)."""

from rduflow.inference.serving.config import EngineConfig
from rduflow.inference.serving.kv_cache import KVCache, Sequence
from rduflow.inference.serving.scheduler import BucketScheduler, ContinuousScheduler
from rduflow.inference.serving.workload import Request


def seq(i, inp, out=4, prefix=None, ptoks=0):
    return Sequence(Request(i, 0.0, inp, out, prefix, ptoks), inp, sent_s=0.0)


def finished_prefix(kv):
    """A request whose 64-token prefix ("g") was computed and which then finished."""
    a = seq(0, 64, prefix="g", ptoks=64)
    kv.admit(a, [], 64)
    a.computed = 64
    kv.computed(a)
    kv.release(a)


def test_blocks_are_taken_per_block_size_and_returned():
    kv = KVCache(10, 16, prefix_caching=False)
    s = seq(0, 33)
    assert kv.admit(s, [], 33)
    assert s.blocks == 3 and kv.free == 7
    s.computed = 33
    assert kv.grow(s, 1) and s.blocks == 3  # token 34 still fits block 3
    s.computed = 48
    assert kv.grow(s, 1) and s.blocks == 4
    kv.release(s)
    assert kv.free == 10 and kv.used == 0


def test_admission_fails_whole_when_blocks_run_out():
    kv = KVCache(2, 16, prefix_caching=False)
    s = seq(0, 40)
    assert not kv.admit(s, [], 40)
    assert kv.free == 2 and s.blocks == 0


def test_shared_prefix_blocks_are_reused_and_the_last_token_is_computed():
    kv = KVCache(100, 16, prefix_caching=True)
    a = seq(0, 100, prefix="g", ptoks=64)
    assert kv.admit(a, kv.cached_blocks(a), 100)
    a.computed = 100
    kv.computed(a)
    b = seq(1, 80, prefix="g", ptoks=64)
    hit = kv.cached_blocks(b)
    assert len(hit) == 4  # the 64 shared tokens; block 5 is b's own
    used = kv.used
    assert kv.admit(b, hit, 80 - 64)
    assert b.computed == 64 and kv.used == used + 1
    # A prompt that is wholly cached still computes its last token.
    c = seq(2, 64, prefix="g", ptoks=64)
    assert len(kv.cached_blocks(c)) == 3


def test_freed_cached_blocks_are_found_until_evicted():
    kv = KVCache(6, 16, prefix_caching=True)
    finished_prefix(kv)
    assert kv.free == 6 and len(kv.evictable) == 4
    b = seq(1, 80, prefix="g", ptoks=64)
    assert len(kv.cached_blocks(b)) == 4  # still there after a finished
    big = seq(2, 5 * 16)
    assert kv.admit(big, [], 80)  # 2 fresh + 3 evicted
    assert len(kv.evictable) == 1
    assert len(kv.cached_blocks(b)) == 1  # the tail went first: the head block survives


def test_tail_blocks_are_evicted_before_the_prefix_head():
    kv = KVCache(5, 16, prefix_caching=True)
    finished_prefix(kv)
    other = seq(1, 16 * 2)
    kv.admit(other, [], 32)  # 1 fresh block + the tail block of a's prefix
    b = seq(2, 100, prefix="g", ptoks=64)
    assert len(kv.cached_blocks(b)) == 3  # blocks 0-2 of the prefix survive


def cfg(**kw):
    return EngineConfig(**{"max_num_batched_tokens": 64, "max_num_seqs": 4, **kw}).checked()


def test_token_budget_and_chunked_prefill():
    kv = KVCache(1000, 16, prefix_caching=False)
    s = ContinuousScheduler(cfg(), kv)
    for i in range(3):
        s.add(seq(i, 100))
    step = s.schedule()
    assert [n for _, n in step.work] == [64]  # the first prompt's first chunk takes the budget
    assert step.batch.tokens == 64
    a = step.work[0][0]
    a.computed += 64
    step = s.schedule()
    assert [n for _, n in step.work] == [36, 28]  # rest of the first prompt, then a chunk of the second


def test_without_chunked_prefill_a_prompt_waits_for_a_budget_it_fits():
    kv = KVCache(1000, 16, prefix_caching=False)
    s = ContinuousScheduler(cfg(enable_chunked_prefill=False), kv)
    s.add(seq(0, 40))
    s.add(seq(1, 40))
    step = s.schedule()
    assert [n for _, n in step.work] == [40]


def test_max_num_seqs_caps_the_running_set():
    kv = KVCache(1000, 16, prefix_caching=False)
    s = ContinuousScheduler(cfg(max_num_seqs=2), kv)
    for i in range(5):
        s.add(seq(i, 4))
    assert len(s.schedule().work) == 2
    assert len(s.waiting) == 3


def test_preemption_frees_the_newest_sequence_and_requeues_it_first():
    kv = KVCache(4, 16, prefix_caching=False)
    s = ContinuousScheduler(cfg(), kv)
    a, b = seq(0, 32, out=100), seq(1, 32, out=100)
    s.add(a)
    s.add(b)
    step = s.schedule()
    assert len(step.work) == 2 and kv.free == 0
    for q, n in step.work:
        q.computed += n
        q.num_tokens += 1
    step = s.schedule()  # a needs a third block: b is preempted
    assert step.preempted == 1 and s.waiting[0] is b and b.computed == 0 and b.preemptions == 1
    assert [q for q, _ in step.work] == [a]


def test_buckets_pad_batch_and_length():
    kv = KVCache(10_000, 16, prefix_caching=False)
    s = BucketScheduler(cfg(max_num_seqs=64, batch_buckets=(1, 4, 8), seq_buckets=(128, 512)), kv)
    for i, n in enumerate((100, 20, 120)):
        s.add(seq(i, n, out=50))
    step = s.schedule()
    assert step.batch.program.batch == 4 and step.batch.program.seq == 128 and step.batch.program.past == 0
    for q, n in step.work:
        q.computed += n
        q.num_tokens += 1
    step = s.schedule()
    # Decode runs at the length bucket holding the longest prompt + output (170 -> 512).
    assert step.batch.program == type(step.batch.program)(4, 1, 512)


def test_evicted_blocks_are_found_again_in_the_offload_tier():
    kv = KVCache(4, 16, prefix_caching=True, offload_blocks=10)
    finished_prefix(kv)
    other = seq(1, 64)
    kv.admit(other, [], 64)  # evicts all four prefix blocks: to the offload tier
    kv.release(other)
    assert len(kv.offloaded) == 4
    b = seq(2, 80, prefix="g", ptoks=64)
    hit = kv.cached_blocks(b)
    assert len(hit) == 4
    assert not kv.admit(b, hit, 16)  # 4 loaded + 1 new > 4 blocks
    c = seq(3, 64, prefix="g", ptoks=64)
    hit = kv.cached_blocks(c)
    assert len(hit) == 3 and kv.admit(c, hit, 16)
    assert kv.loaded == 3 and c.computed == 48 and c.blocks == 4 and kv.free == 0


def test_without_an_offload_tier_evicted_blocks_are_gone():
    kv = KVCache(4, 16, prefix_caching=True)
    finished_prefix(kv)
    kv.admit(seq(1, 64), [], 64)
    assert kv.cached_blocks(seq(2, 80, prefix="g", ptoks=64)) == []


def test_a_repeated_prompt_hits_to_its_last_full_block():
    kv = KVCache(100, 16, prefix_caching=True)
    r = Request(0, 0.0, 100, 4, "g", 32, "g/p1")
    a = Sequence(r, 100, sent_s=0.0)
    kv.admit(a, kv.cached_blocks(a), 100)
    a.computed = 100
    kv.computed(a)
    again = Sequence(Request(1, 0.0, 100, 4, "g", 32, "g/p1"), 100, sent_s=0.0)
    assert len(kv.cached_blocks(again)) == 6  # 96 of 100 tokens
    other = Sequence(Request(2, 0.0, 100, 4, "g", 32, "g/p2"), 100, sent_s=0.0)
    assert len(kv.cached_blocks(other)) == 2  # only the system prompt
