"""Architecture presets, their sources, and the errors invalid files give."""

import re
from importlib import resources

import pytest

from rduflow.ir import DType
from rduflow.compiler.target import ArchError, GpuArch, RduArch, list_arches, load_arch

GPUS = ["a100-40gb", "a100-80gb", "b200", "h100-pcie", "h100-sxm", "h200-sxm", "l40s", "mi300x"]
PRESETS = sorted(GPUS + ["plasticine", "sn10", "sn30", "sn40l"])


def test_presets_are_listed_and_load():
    assert list_arches() == PRESETS
    for name in PRESETS:
        arch = load_arch(name)
        assert arch.name == name
        assert isinstance(arch, GpuArch if name in GPUS else RduArch)


def preset_lines():
    for p in resources.files("rduflow.compiler.target").joinpath("presets").iterdir():
        if p.name.endswith(".toml"):
            for i, line in enumerate(p.read_text().splitlines(), 1):
                yield p.name, i, line


def test_every_number_in_a_preset_cites_its_source():
    """A value line holding a number must say whether it is disclosed, assumed or fitted, and cite a
    source in brackets (hardware.md's kinds and references)."""
    number = re.compile(r"^\s*[a-z0-9_]+\s*=\s*\[?\s*-?[0-9]")
    tagged = re.compile(r"#\s*(disclosed|assumed|fitted)\s*\[[^\]]+\]")
    bad = [f"{f}:{i}: {line}" for f, i, line in preset_lines() if number.match(line) and not tagged.search(line)]
    assert not bad, "untagged numbers:\n" + "\n".join(bad)


def test_sn40l_matches_the_disclosed_figures():
    a = load_arch("sn40l")
    assert a.pcu.count == a.pmu.count == 1040
    assert a.peak_flops(DType.bf16) / 1e12 == pytest.approx(638, rel=0.01)  # [SN40L Table II]
    assert a.sram_bytes == 520 * 2**20
    assert a.memory.hbm.bandwidth_gb_s == 1800 and a.memory.hbm.capacity_gib == 64
    assert a.memory.ddr.bandwidth_gb_s == 200
    assert a.sockets.per_node == 8
    # AGCUs sit on the top and bottom rows, evenly spread.
    coords = [a.agcu_coord(i) for i in range(a.agcu.count)]
    assert {r for r, _ in coords} == {0, a.grid.rows - 1} and len(set(coords)) == a.agcu.count


def test_gpu_presets_match_hardware_md():
    assert load_arch("h100-sxm").hbm.bandwidth_gb_s == 3350
    assert load_arch("a100-80gb").tensor_tflops["bf16"] == 312
    assert load_arch("a100-40gb").hbm.bandwidth_gb_s == 1555


def test_new_gpu_presets_take_the_dense_datasheet_figures():
    """Vendors quote tensor rates with 2:4 sparsity; the presets hold the dense half."""
    h200, b200, l40s, mi300x = (load_arch(n) for n in ("h200-sxm", "b200", "l40s", "mi300x"))
    assert (h200.hbm.bandwidth_gb_s, h200.tensor_tflops["bf16"], h200.nvlink_gb_s) == (4800, 989, 900)
    assert (b200.hbm.bandwidth_gb_s, b200.tensor_tflops["f8e4m3"], b200.nvlink_gb_s) == (8000, 4500, 1800)
    assert (l40s.hbm.bandwidth_gb_s, l40s.tensor_tflops["bf16"], l40s.nvlink_gb_s) == (864, 362.05, 0)
    assert (mi300x.hbm.bandwidth_gb_s, mi300x.tensor_tflops["bf16"], mi300x.sms) == (5300, 1307.4, 304)


def _numbers(data, where=""):
    for k, v in data.items():
        if isinstance(v, dict):
            yield from _numbers(v, f"{where}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield f"{where}{k}", v


@pytest.mark.parametrize("name", GPUS)
def test_gpu_preset_numbers_are_positive(name):
    """Every figure of a GPU preset is above zero, except nvlink_gb_s on a PCIe-only card,
    whose GPUs then reach each other over PCIe."""
    arch = load_arch(name)
    bad = [f"{k} = {v}" for k, v in _numbers(arch.model_dump()) if v <= 0 and k != "nvlink_gb_s"]
    assert not bad, f"{name}: " + ", ".join(bad)
    assert arch.peer_link_gb_s == (arch.nvlink_gb_s / 2 if arch.nvlink_gb_s else arch.pcie_gb_s) > 0


def test_the_source_tag_test_reads_every_gpu_preset():
    """The tag test below reads every preset file; make sure every GPU preset is among them."""
    files = {f for f, _, line in preset_lines() if line.strip() == 'kind = "gpu"'}
    assert files == {f"{n}.toml" for n in GPUS}


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ('base = "sn40l"\n[pcu]\nlanes = 0\n', "field 'pcu.lanes': Input should be greater than or equal to 1 (got 0)"),
    ('base = "sn40l"\n[memory.hbm]\nbandwidth_gb_s = -5\n', "field 'memory.hbm.bandwidth_gb_s': Input should be greater than 0"),
    ('base = "sn40l"\n[pcu]\nlane = 4\n', "field 'pcu.lane': unknown field (allowed: clock_ghz, count, lanes,"),
    ('base = "sn40l"\n[grid]\nrows = 41\n', "grid.rows x grid.cols = 41 x 52: a checkerboard holds 1066 PCUs"),
    ('base = "sn40l"\n[pcu.systolic_flops_per_cycle]\nbf17 = 3\n', "'bf17' is not an element type"),
    ('base = "sn40l"\n[pcu]\ntail_functions = ["expo"]\n', "unknown IR op(s) expo"),
    ('kind = "tpu"\nname = "x"\n', "field 'kind': must be 'rdu' or 'gpu'"),
    ('kind = "gpu"\nname = "g"\n', "field 'sms': Field required"),
    ('kind = "rdu"\n[grid\n', "not valid TOML"),
    ('base = "nope"\n', "unknown architecture 'nope'"),
])
def test_invalid_files_name_the_field(tmp_path, text, message):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ArchError) as e:
        load_arch(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_user_file_based_on_a_preset(tmp_path):
    path = write(tmp_path, "slow-hbm.yaml", "base: sn40l\nmemory:\n  hbm:\n    bandwidth_gb_s: 1600\n")
    a = load_arch(str(path))
    assert a.name == "slow-hbm" and a.memory.hbm.bandwidth_gb_s == 1600
    assert a.pcu == load_arch("sn40l").pcu


def test_overrides_are_validated():
    assert load_arch("sn40l", {"memory.hbm.bandwidth_gb_s": 2000}).memory.hbm.bandwidth_gb_s == 2000
    with pytest.raises(ArchError, match="field 'mesh.hop_latency_cycles': Input should be greater than or equal to 0"):
        load_arch("sn40l", {"mesh.hop_latency_cycles": -1})


def test_missing_and_unknown():
    with pytest.raises(ArchError, match="no such architecture file"):
        load_arch("/nonexistent/arch.toml")
    with pytest.raises(ArchError, match=r"not a preset \(a100-40gb, .*sn40l\)"):
        load_arch("sn50")


def _leaves(table: dict, prefix: str = ""):
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_with_the_values_and_types_written(name):
    """Strict validation coerces nothing: every value a preset file holds comes back as written."""
    import tomllib

    text = resources.files("rduflow.compiler.target").joinpath("presets", f"{name}.toml").read_text()
    loaded = dict(_leaves(load_arch(name).model_dump()))
    for key, value in _leaves(tomllib.loads(text)):
        got = loaded[key]
        assert (list(got) if isinstance(got, tuple) else got) == value, key
        assert type(got) in (type(value), tuple) or (type(got), type(value)) == (float, int), key


@pytest.mark.parametrize("text, message", [
    ('base = "sn40l"\n[pcu]\nclock_ghz = 1e-300\n',
     "field 'pcu.clock_ghz': Input should be greater than or equal to 0.01 (got 1e-300); allowed: 0.01 to 10"),
    ('base = "sn40l"\n[grid]\nrows = "40"\n', "field 'grid.rows': Input should be a valid integer (got '40'); allowed: 1 to 1024"),
    ('base = "sn40l"\n[grid]\nrows = true\n', "field 'grid.rows': Input should be a valid integer (got True)"),
    ('base = "sn40l"\n[pmu]\ncapacity_kib = 0.0005\n', "field 'pmu.capacity_kib': Input should be greater than or equal to 1 "
                                                       "(got 0.0005); allowed: 1 to 1048576"),
    ('base = "sn40l"\n[pcu]\ncount = 1040.0\n', "field 'pcu.count': Input should be a valid integer (got 1040.0)"),
    ('base = "sn40l"\n[pcu.simd_flops_per_cycle]\nf32 = 1e-300\n', "rate for f32 is 1e-300; allowed: 0.001 to 10000000"),
    ('base = "sn40l"\n[pcu.simd_flops_per_cycle]\nf32 = true\n', "field 'pcu.simd_flops_per_cycle.f32': Input should be a valid number"),
    ('base = "h100-sxm"\nclock_ghz = "1.98"\n', "field 'clock_ghz': Input should be a valid number (got '1.98'); allowed: 0.01 to 10"),
])
def test_absurd_values_and_wrong_types_are_refused_with_the_range(tmp_path, text, message):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ArchError) as e:
        load_arch(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_integers_are_accepted_where_floats_are_expected(tmp_path):
    a = load_arch(write(tmp_path, "int.toml", 'base = "sn40l"\n[pcu]\nclock_ghz = 2\n'))
    assert a.clock_ghz == 2
    a = load_arch(write(tmp_path, "int.yaml", "base: sn40l\npcu:\n  clock_ghz: 2\n  tail_functions: [exp]\n"))
    assert a.clock_ghz == 2 and a.pcu.tail_functions == ("exp",)


def test_a_tiny_pmu_no_longer_reaches_the_allocator():
    """pmu.capacity_kib = 0.0005 made a PMU hold 0 bytes: a ZeroDivisionError in the back end's allocation."""
    with pytest.raises(ArchError, match="pmu.capacity_kib"):
        load_arch("sn40l", {"pmu.capacity_kib": 0.0005})
