"""Energy, power and cost (docs/energy.md): what must hold whatever the constants."""

import functools
import re
from importlib import resources

import pytest
from llmcases import WIDE
from rduflow.compiler.target import ArchError, load_arch
from rduflow.inference import RunConfig, report_dict, simulate_llm
from rduflow.inference.energy import step_energy

TARGETS = [pytest.param("h100-sxm", id="gpu"), pytest.param("sn40l", id="rdu")]
GPU = load_arch("h100-sxm").power
RDU = load_arch("sn40l").power


@functools.cache
def _run(cfg: RunConfig):
    return simulate_llm(cfg)


def run(arch, **kw):
    return _run(RunConfig(WIDE, arch, devices=1, **{"prompt": 128, "gen": 2, **kw}))


# -- the energy of one step ------------------------------------------------------------------
@pytest.mark.parametrize("power", [GPU, RDU], ids=["gpu", "rdu"])
def test_zero_work_costs_exactly_idle_energy(power):
    e = step_energy(power, 0.25, 0.0, {}, "bf16")
    assert e.total_j == power.idle_w * 0.25 and not e.clamped
    assert e.joules["compute"] == 0.0


@pytest.mark.parametrize("power,tiers", [(GPU, ("hbm", "links")), (RDU, ("hbm", "ddr", "sram", "mesh", "links"))],
                         ids=["gpu", "rdu"])
def test_more_flops_or_bytes_never_less_energy_and_power_stays_between_idle_and_limit(power, tiers):
    t = 1e-3
    amounts = [0.0, 1e6, 1e9, 1e12, 1e15, 1e18]  # far past the power limit at the top
    for tier in (None, *tiers):
        last = -1.0
        for x in amounts:
            flops, nbytes = (x, {}) if tier is None else (1e9, {tier: x})
            e = step_energy(power, t, flops, nbytes, "bf16")
            assert e.total_j >= last
            assert power.idle_w - 1e-9 <= e.power_w <= power.tdp_w + 1e-9
            last = e.total_j
        assert e.clamped and e.power_w == pytest.approx(power.tdp_w)


def test_a_cheaper_dtype_costs_less_per_flop():
    assert step_energy(GPU, 1.0, 1e12, {}, "f8e4m3").total_j < step_energy(GPU, 1.0, 1e12, {}, "bf16").total_j


# -- whole runs --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", TARGETS)
def test_energy_at_least_idle_and_average_power_between_idle_and_limit(arch):
    r = run(arch)
    e = report_dict(r)["energy"]
    parts = e["by_component"]
    device_j = sum(v for k, v in parts.items() if k not in ("host", "facility"))
    assert device_j >= e["idle_w"] * r.e2e_s * r.devices * (1 - 1e-9)
    assert e["idle_w"] <= e["avg_power_w"] <= e["tdp_w"]
    assert e["avg_power_w"] <= e["peak_power_w"] <= e["tdp_w"]
    assert e["total_j"] == pytest.approx(sum(parts.values()))
    assert parts["compute"] > 0 and parts["hbm"] > 0
    # J/token: each phase's energy over its tokens
    assert e["j_per_token"]["prefill"] > 0 and e["j_per_token"]["decode"] > 0


def test_rdu_counts_on_chip_traffic():
    parts = report_dict(run("sn40l"))["energy"]["by_component"]
    assert parts["sram"] > 0 and parts["mesh"] > 0


@pytest.mark.parametrize("arch", TARGETS)
def test_int4_weights_use_less_energy_per_decode_token_than_bf16(arch):
    bf16 = report_dict(run(arch))["energy"]["j_per_token"]["decode"]
    int4 = report_dict(run(arch, weights="int4"))["energy"]["j_per_token"]["decode"]
    assert int4 < bf16


def test_host_power_is_a_separate_switch():
    on, off = report_dict(run("h100-sxm"))["energy"], report_dict(run("h100-sxm", host_power=False))["energy"]
    r = run("h100-sxm")
    assert on["by_component"]["host"] == pytest.approx(GPU.host_w * r.e2e_s)
    assert off["by_component"]["host"] == 0.0
    assert on["total_j"] - off["total_j"] == pytest.approx(GPU.host_w * r.e2e_s)
    assert on["avg_power_w"] == pytest.approx(off["avg_power_w"])  # the device's own power does not change


def test_cost_from_the_preset_price_or_the_override():
    r = run("h100-sxm")
    c = report_dict(r)["cost"]
    price = load_arch("h100-sxm").price.usd_per_device_hour
    assert c["usd_per_hour"] == pytest.approx(price)
    assert c["usd_per_mtok_input"] == pytest.approx(price / 3600 * r.ttft_s / 128 * 1e6)
    assert c["usd_per_mtok_output"] == pytest.approx(price / 3600 * r.decode_s / 1 * 1e6)
    doubled = report_dict(run("h100-sxm", usd_per_device_hour=2 * price))["cost"]
    assert doubled["usd_per_mtok_output"] == pytest.approx(2 * c["usd_per_mtok_output"])
    assert report_dict(run("sn40l"))["cost"]["usd_per_hour"] is None  # no public price per device-hour


def test_bad_price_is_one_clear_error():
    from rduflow.inference.errors import LlmSimError

    with pytest.raises(LlmSimError, match="--usd-per-device-hour"):
        RunConfig(WIDE, "h100-sxm", usd_per_device_hour=-1.0).checked()


# -- the power table in architecture files ---------------------------------------------------
def _preset_text(preset: str) -> str:
    return resources.files("rduflow.compiler.target").joinpath("presets", f"{preset}.toml").read_text()


def _write_without(tmp_path, preset: str, drop: tuple[str, ...]) -> str:
    """The preset as a user file, without the tables named in ``drop``."""
    blocks = re.split(r"(?m)^(?=\[)", _preset_text(preset))
    kept = [b for b in blocks if not any(b.startswith(f"[{d}") for d in drop)]
    path = tmp_path / f"{preset}-mine.toml"
    path.write_text("".join(kept))
    return str(path)


def test_a_file_without_power_or_price_loads_and_reports_no_energy(tmp_path):
    path = _write_without(tmp_path, "h100-sxm", ("power", "price"))
    arch = load_arch(path)
    assert arch.power is None and arch.price is None
    d = report_dict(simulate_llm(RunConfig(WIDE, arch, prompt=64, gen=2)))
    assert d["energy"] is None and d["cost"]["usd_per_mtok_output"] is None


def test_a_power_table_missing_a_tier_names_it(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(re.sub(r"(?m)^ddr = 160.*\n", "", _preset_text("sn40l")))
    with pytest.raises(ArchError, match=r"mine.toml: .*pj_per_byte needs an entry for ddr") as e:
        load_arch(str(path))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field,value,match", [
    ("power.idle_w", 900, "idle_w .* must be below tdp_w"),
    ("power.pj_per_byte.l3", 1.0, "'l3' is not a tier"),
    ("power.pj_per_flop.bf16", -1.0, "energy for bf16"),
])
def test_bad_power_fields_are_one_clear_line(field, value, match):
    with pytest.raises(ArchError, match=match) as e:
        load_arch("h100-sxm", {field: value})
    assert "\n" not in str(e.value)
