"""Workloads: arrival processes, length distributions, shared prefixes, traces and spec files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rduflow.inference.errors import LlmSimError
from rduflow.inference.serving.workload import (
    MAX_REQUESTS,
    SharedPrefix,
    Stage,
    WorkloadError,
    load_workload,
    parse_arrival,
    parse_length,
    parse_stages,
    synthesize,
)


def make(arrival="poisson", input_len="512", output_len="128", requests=None, rate=None, stages=None,
         concurrency=None, shared_prefix=None, seed=0):
    return synthesize(
        arrival=parse_arrival(arrival),
        input_len=None if input_len is None else parse_length(input_len, "--input-len"),
        output_len=None if output_len is None else parse_length(output_len, "--output-len"),
        requests=requests, rate=rate, stages=None if stages is None else parse_stages(stages),
        concurrency=concurrency, shared_prefix=shared_prefix, seed=seed)


def arrivals(w) -> np.ndarray:
    return np.array([r.arrival_s for r in w.requests])


def draw(text: str, n: int = 20000, seed: int = 0) -> np.ndarray:
    return parse_length(text, "--input-len").sample(np.random.default_rng(seed), n)


# ---- determinism and the Workload's invariants ----------------------------------------


def test_same_seed_same_workload_and_another_seed_differs():
    kw = dict(arrival="gamma:2", input_len="uniform:10,1000", output_len="lognormal:200,100", requests=500, rate=3.0)
    assert make(**kw, seed=7) == make(**kw, seed=7)
    assert make(**kw, seed=7).requests != make(**kw, seed=8).requests


def test_requests_are_sorted_and_numbered_in_arrival_order():
    w = make(requests=1000, rate=5.0, input_len="uniform:1,50")
    t = arrivals(w)
    assert np.all(np.diff(t) >= 0)
    assert [r.id for r in w.requests] == list(range(1000))
    assert all(r.input_tokens >= 1 and r.output_tokens >= 1 for r in w.requests)
    assert w.description == "1000 requests, Poisson 5/s, input uniform 1..50, output 128"


# ---- arrivals ---------------------------------------------------------------------------


def test_poisson_gaps_are_exponential_with_mean_one_over_rate():
    gaps = np.diff(arrivals(make(requests=40000, rate=4.0)), prepend=0.0)
    # 40,000 exponential gaps: the mean's standard error is 0.5%; CV of an exponential is 1
    assert gaps.mean() == pytest.approx(0.25, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_gaps_have_the_asked_cv_and_mean(cv):
    gaps = np.diff(arrivals(make(f"gamma:{cv}", requests=100000, rate=10.0)), prepend=0.0)
    assert gaps.mean() == pytest.approx(0.1, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_constant_gaps_are_exactly_one_over_rate():
    t = arrivals(make("constant", requests=100, rate=4.0))
    assert t[0] == 0.25
    np.testing.assert_allclose(np.diff(t), 0.25, rtol=0, atol=1e-12)


def test_stages_send_what_arrives_in_each_stage():
    w = make("constant", stages="2.5:600,6:600")
    t = arrivals(w)
    assert len(t) == 1500 + 3600  # inference-perf's int(rate x duration) per stage
    assert np.sum(t <= 600) == 1500 and t[-1] == pytest.approx(1200)
    tp = arrivals(make("poisson", stages="4:500,20:500"))
    first, second = np.sum(tp < 500), np.sum((tp >= 500) & (tp < 1000))
    # Poisson counts: 2000 +- 45 and 10000 +- 100; five standard deviations of room
    assert abs(first - 2000) < 5 * 45 and abs(second - 10000) < 5 * 100
    assert tp.max() < 1000


def test_requests_cap_the_stages_and_a_pause_sends_nothing():
    assert len(make("constant", stages="10:100,10:100", requests=1500).requests) == 1500
    t = arrivals(make("constant", stages="1:10,0:100,1:10"))
    assert len(t) == 20 and not np.any((t > 10) & (t <= 110))


def test_jittered_is_inference_perfs_constant_load():
    t = arrivals(make("jittered", stages="3:100,5:100"))
    assert len(t) == 300 + 500
    assert t[299] == pytest.approx(100) and t[-1] == pytest.approx(200)  # each stage ends on its last request
    assert np.std(np.diff(t[:300])) > 0.1  # not evenly spaced


def test_closed_loop_sends_everything_at_zero_with_a_concurrency():
    w = make(requests=64, concurrency=16)
    assert w.concurrency == 16 and set(arrivals(w)) == {0.0}
    assert "closed loop, 16 in flight" in w.description


# ---- lengths ----------------------------------------------------------------------------


def test_fixed_and_uniform_lengths():
    assert set(draw("300", 100)) == {300}
    u = draw("uniform:5,9")
    assert set(u) == {5, 6, 7, 8, 9}  # both ends inclusive
    assert u.mean() == pytest.approx(7, rel=0.01)


def test_normal_is_clipped_to_one_and_twice_the_mean_unless_told():
    x = draw("normal:100,80")
    assert x.min() == 1 and x.max() == 200
    assert x.mean() == pytest.approx(100, rel=0.03)  # clipping both sides alike keeps the mean
    y = draw("normal:100,80,50,120")
    assert y.min() == 50 and y.max() == 120


def test_lognormal_has_the_mean_and_std_of_the_length_itself():
    x = draw("lognormal:300,150", 100000)
    assert x.mean() == pytest.approx(300, rel=0.02)
    assert x.std() == pytest.approx(150, rel=0.05)
    y = draw("lognormal:300,150,100,400")
    assert y.min() == 100 and y.max() == 400


@pytest.mark.parametrize("name, text", [
    ("lens.txt", "10\n20\n\n30\n"),
    ("lens.json", "[10, 20, 30]"),
    ("lens.csv", "tokens\n10\n20\n30\n"),
])
def test_empirical_lengths_from_a_file(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    x = draw(f"file:{tmp_path / name}", 3000)
    assert set(x) == {10, 20, 30}
    assert x.mean() == pytest.approx(20, rel=0.03)


# ---- shared prefixes --------------------------------------------------------------------


def test_shared_prefix_groups_cycle_through_a_shuffled_pool():
    sp = SharedPrefix(num_groups=9, num_prompts_per_group=5, system_prompt_len=100, question_len=447, output_len=248)
    w = make(input_len=None, output_len=None, requests=90, rate=2.0, shared_prefix=sp)
    reqs = w.requests
    assert {r.prefix_id for r in reqs} == {f"g{g}" for g in range(9)}
    assert all(r.prefix_tokens == 100 and r.input_tokens == 547 and r.output_tokens == 248 for r in reqs)
    first = [r.prefix_id for r in reqs[:45]]
    assert sorted(first.count(f"g{g}") for g in range(9)) == [5] * 9  # each prompt once per pass
    assert first == [r.prefix_id for r in reqs[45:]]  # then the same order again
    assert first != sorted(first)  # shuffled


def test_shared_prefix_lengths_may_vary_per_prompt():
    sp = SharedPrefix(3, 4, parse_length("uniform:50,60", "s"), parse_length("uniform:1,400", "q"), 10)
    reqs = make(input_len=None, output_len=None, requests=12, rate=1.0, shared_prefix=sp).requests
    by_group = {}
    for r in reqs:
        by_group.setdefault(r.prefix_id, set()).add(r.prefix_tokens)
        assert 50 <= r.prefix_tokens <= 60 and r.input_tokens > r.prefix_tokens
    assert all(len(v) == 1 for v in by_group.values())  # one system prompt per group
    assert len({r.input_tokens for r in reqs}) > 3


# ---- traces -----------------------------------------------------------------------------


def test_csv_trace_is_sorted_and_renumbered(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_s,input_tokens,output_tokens,prefix_id,prefix_tokens\n"
                 "2.5,100,10,sys,40\n0.5,200,20,,\n1.0,300.0,30,sys,40\n")
    w = load_workload(str(f))
    assert [(r.id, r.arrival_s, r.input_tokens, r.prefix_id, r.prefix_tokens) for r in w.requests] == [
        (0, 0.5, 200, None, 0), (1, 1.0, 300, "sys", 40), (2, 2.5, 100, "sys", 40)]
    assert w.source == str(f) and w.concurrency is None


def test_jsonl_trace_round_trip(tmp_path):
    reqs = make(requests=50, rate=3.0, input_len="uniform:1,900").requests
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"arrival_s": r.arrival_s, "input_tokens": r.input_tokens,
                                       "output_tokens": r.output_tokens}) for r in reqs) + "\n")
    assert load_workload(str(f)).requests == reqs


def test_vidur_traces_are_read(tmp_path):
    f = tmp_path / "splitwise.csv"  # microsoft/vidur data/processed_traces/splitwise_conv.csv's columns
    f.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.314579,396,109\n")
    assert [(r.arrival_s, r.input_tokens, r.output_tokens) for r in load_workload(str(f)).requests] == [
        (0.0, 374, 44), (4.314579, 396, 109)]
    g = tmp_path / "replay.csv"  # what vidur's TraceReplayRequestGenerator reads
    g.write_text("Date,Time,PromptTokenCount,CompletionTokenCount\n2023-11-16,3.0,10,5\n2023-11-16,1.0,20,6\n")
    assert [(r.arrival_s, r.input_tokens) for r in load_workload(str(g)).requests] == [(1.0, 20), (3.0, 10)]


# ---- spec files -------------------------------------------------------------------------


def test_yaml_spec(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("arrival: {type: gamma, rate: 4, cv: 2}\nrequests: 200\n"
                 "input_len: \"uniform:128,1024\"\noutput_len: {type: normal, mean: 256, std_dev: 64, min: 1, max: 512}\n"
                 "seed: 3\n")
    w = load_workload(str(f))
    assert len(w.requests) == 200 and w.source == str(f)
    assert all(128 <= r.input_tokens <= 1024 and 1 <= r.output_tokens <= 512 for r in w.requests)
    assert w == load_workload(str(f), seed=99)  # the file's seed wins
    assert w.description.startswith("200 requests, gamma CV 2 4/s, input uniform 128..1024")


def test_toml_spec_with_stages_shared_prefix_and_closed_loop(tmp_path):
    f = tmp_path / "w.toml"
    f.write_text('arrival = {type = "constant"}\n'
                 'stages = [{rate = 2, duration_s = 10}, {rate = 4, duration_s = 10}]\n'
                 "shared_prefix = {num_groups = 2, num_prompts_per_group = 3, system_prompt_len = 10, "
                 "question_len = 5, output_len = 7}\n")
    w = load_workload(str(f))
    assert len(w.requests) == 60 and {r.input_tokens for r in w.requests} == {15}
    g = tmp_path / "c.toml"
    g.write_text('arrival = {type = "closed_loop", concurrency = 8}\nrequests = 30\ninput_len = 64\noutput_len = 8\n')
    assert load_workload(str(g)).concurrency == 8


INFERENCE_PERF = """\
api: {type: completion, streaming: true}
server: {type: vllm, model_name: m, base_url: "http://0.0.0.0:8000", ignore_eos: true}
tokenizer: {pretrained_model_name_or_path: m}
load:
  type: constant
  stages: [{rate: 2.5, duration: 600}, {rate: 6, duration: 600}]
data:
  type: shared_prefix
  shared_prefix:
    num_unique_system_prompts: 9
    num_users_per_system_prompt: 5
    system_prompt_len: 100
    question_len: 447
    output_len: 248
report: {request_lifecycle: {summary: true}}
"""


def test_an_inference_perf_config_as_it_is(tmp_path):
    f = tmp_path / "general-lite.yaml"
    f.write_text(INFERENCE_PERF)
    w = load_workload(str(f))
    t = arrivals(w)
    # load.type constant: exactly rate x duration per stage, jittered; 1 s (load.interval) between
    assert len(t) == 1500 + 3600 and t[1499] == pytest.approx(600) and t[-1] == pytest.approx(1201)
    assert {r.prefix_id for r in w.requests} == {f"g{g}" for g in range(9)}
    assert {(r.input_tokens, r.prefix_tokens, r.output_tokens) for r in w.requests} == {(547, 100, 248)}


def test_inference_perf_random_data_and_concurrent_load(tmp_path):
    f = tmp_path / "ip.yaml"
    f.write_text("load: {type: concurrent, stages: [{num_requests: 100, concurrency_level: 10}]}\n"
                 "data:\n  type: random\n  input_distribution: {min: 10, max: 100, mean: 50, std_dev: 20}\n"
                 "  output_distribution: {type: fixed, mean: 30}\n")
    w = load_workload(str(f))
    assert w.concurrency == 10 and len(w.requests) == 100
    assert all(10 <= r.input_tokens <= 100 and r.output_tokens == 30 for r in w.requests)


# ---- errors: one line naming the file (or option) and the field -------------------------


def write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


@pytest.mark.parametrize("name, text, message", [
    ("t.csv", "arrival_s,input_tokens,output_tokens\n0,10,5\n1,-3,5\n", "line 3: input_tokens must be an integer >= 1, got -3"),
    ("t.csv", "arrival_s,input_tokens,output_tokens\nsoon,10,5\n", "line 2: arrival_s must be a number of seconds >= 0, got 'soon'"),
    ("t.csv", "arrival_s,input_tokens,output_tokens\n0,10.5,5\n", "line 2: input_tokens must be an integer >= 1, got 10.5"),
    ("t.csv", "", "the trace is empty"),
    ("t.csv", "arrival_s,input_tokens,output_tokens\n", "the trace has no requests"),
    ("t.csv", "arrival_s,input_tokens,output_tokens,prompt\n0,1,1,x\n", "line 1: unknown field 'prompt'"),
    ("t.csv", "arrival_s,input_tokens\n0,1\n", "line 1: missing field output_tokens"),
    ("t.csv", "arrival_s,arrived_at,input_tokens,output_tokens\n0,0,1,1\n", "'arrived_at' gives arrival_s a second time"),
    ("t.csv", "arrival_s,input_tokens,output_tokens\n0,1\n", "line 2: 2 values for 3 columns"),
    ("t.jsonl", '{"arrival_s": 0, "input_tokens": 10, "output_tokens": 2, "prefix_id": "a", "prefix_tokens": 11}\n',
     "line 1: prefix_tokens (11) exceeds input_tokens (10)"),
    ("t.jsonl", '{"arrival_s": 0, "input_tokens": 10, "output_tokens": 2, "prefix_tokens": 5}\n', "line 1: prefix_tokens needs a prefix_id"),
    ("t.jsonl", '{"arrival_s": 0,\n', "line 1: not JSON"),
    ("w.yaml", "arrival: {type: poisson, rate: 4}\nrequests: 10\ninput_len: 5\noutput_len: 5\nburst: 3\n", "burst: unknown field"),
    ("w.yaml", "arrival: {type: zipf, rate: 4}\n", "arrival.type: unknown arrival type 'zipf'"),
    ("w.yaml", "arrival: {type: poisson, rate: -1}\nrequests: 10\ninput_len: 5\noutput_len: 5\n", "the rate must be a finite number > 0 requests/s, got -1"),
    ("w.yaml", "arrival: {type: gamma, rate: 1, cv: 0}\nrequests: 10\ninput_len: 5\noutput_len: 5\n", "the gamma CV must be a number > 0, got 0"),
    ("w.yaml", "arrival: {type: poisson, rate: 4}\ninput_len: 5\noutput_len: 5\n", "a rate with no request count never ends"),
    ("w.yaml", f"arrival: {{type: poisson, rate: 4}}\nrequests: {MAX_REQUESTS + 1}\ninput_len: 5\noutput_len: 5\n",
     "requests must be 1 to 10,000,000"),
    ("w.yaml", "arrival: {type: poisson}\nstages: [{rate: 100000, duration_s: 1000}]\ninput_len: 5\noutput_len: 5\n",
     "at most 10,000,000 are simulated"),
    ("w.yaml", "arrival: {type: poisson, rate: 4}\nrequests: 10\ninput_len: \"uniform:9,3\"\noutput_len: 5\n",
     "input_len: uniform needs LO <= HI"),
    ("w.yaml", "arrival: {type: poisson, rate: 4}\nrequests: 10\ninput_len: 0\noutput_len: 5\n", "input_len: token counts must be >= 1, got 0"),
    ("w.yaml", "arrival: {type: poisson, rate: 4\n", "not valid YAML"),
    ("w.toml", "arrival = \n", "not valid TOML"),
    ("w.yaml", "load: {type: trace_replay, stages: [{rate: 1, duration: 1}]}\ndata: {type: random}\n", "load.type: 'trace_replay' is not simulated"),
    ("w.yaml", "load: {type: constant, stages: [{rate: 1, duration: 10}]}\ndata: {type: shareGPT}\n", "data.type: 'shareGPT' needs a dataset"),
    ("w.json", "{}", "cannot tell what '.json' is"),
])
def test_bad_files_get_one_line_naming_file_and_field(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(WorkloadError) as e:
        load_workload(path)
    assert message in str(e.value) and str(e.value).startswith(path)
    assert "\n" not in str(e.value) and isinstance(e.value, LlmSimError)


def test_a_missing_file():
    with pytest.raises(WorkloadError, match=r"^nowhere/w.csv: cannot read the trace"):
        load_workload("nowhere/w.csv")
    with pytest.raises(WorkloadError, match=r"--input-len: cannot read length file nowhere.txt"):
        parse_length("file:nowhere.txt", "--input-len")


@pytest.mark.parametrize("call, message", [
    (lambda: parse_arrival("zipf"), "--arrival: unknown arrival 'zipf'"),
    (lambda: parse_arrival("gamma"), "--arrival: gamma takes its coefficient of variation"),
    (lambda: parse_arrival("gamma:-1"), "the gamma CV must be a number > 0"),
    (lambda: parse_stages("4:60,8"), "--stages takes RATE:SECONDS"),
    (lambda: parse_stages("-4:60"), "--stages: stage 1: the rate must be >= 0"),
    (lambda: parse_stages("0:60"), "every stage has rate 0"),
    (lambda: parse_length("gauss:1,2", "--output-len"), "--output-len: cannot read 'gauss:1,2'"),
    (lambda: parse_length("normal:100", "--output-len"), "normal takes MEAN,STD"),
    (lambda: parse_length("lognormal:0,3", "--output-len"), "MEAN must be > 0"),
    (lambda: make(requests=10, rate=0.0), "the rate must be a finite number > 0 requests/s, got 0"),
    (lambda: make(requests=10), "give a rate, stages or a concurrency"),
    (lambda: make(requests=10, concurrency=0), "concurrency must be >= 1"),
    (lambda: make(requests=10, rate=1.0, shared_prefix=SharedPrefix(1, 1, 1, 1, 1)), "a shared prefix sets the input and output lengths"),
])
def test_bad_options_get_one_line(call, message):
    with pytest.raises(WorkloadError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name, text, message", [
    ("lens.txt", "10\nten\n", "line 2: a length must be an integer >= 1, got 'ten'"),
    ("lens.json", '{"a": 1}', "a .json length file is a list of integers"),
    ("lens.csv", "a,b\n1,2\n", "a .csv length file has one column"),
    ("lens.txt", "\n", "the length file has no values"),
])
def test_bad_length_files(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(WorkloadError, match=message):
        parse_length(f"file:{path}", "--input-len")


def test_stage_dataclass_is_what_parse_stages_gives():
    assert parse_stages("4:60, 8:120") == [Stage(4.0, 60.0), Stage(8.0, 120.0)]
