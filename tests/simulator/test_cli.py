"""rduflow arch list / show, through the command-line entry point."""

import json

from rduflow.inference.cli import main


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_arch_list(capsys):
    code, out, _ = cli(capsys, "arch", "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["a100-40gb", "a100-80gb", "b200", "h100-pcie", "h100-sxm", "h200-sxm", "l40s", "mi300x",
                     "plasticine", "sn10", "sn30", "sn40l"]
    assert "(default)" in out.splitlines()[-1]


def test_arch_show(capsys):
    code, out, _ = cli(capsys, "arch", "show", "sn40l")
    assert code == 0
    assert "[memory.hbm]\ncapacity_gib = 64.0\nbandwidth_gb_s = 1800.0" in out
    assert "# peak bf16: 639.0 TFLOPS (1040 PCUs x 384 FLOP/cycle x 1.6 GHz)" in out
    code, out, _ = cli(capsys, "arch", "show", "h100-sxm", "--json")
    assert code == 0 and json.loads(out)["hbm"]["bandwidth_gb_s"] == 3350


def test_user_file_is_shown(capsys, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "sn40l"\n[memory.hbm]\nbandwidth_gb_s = 2000\n')
    code, out, _ = cli(capsys, "arch", "show", path)
    assert code == 0 and 'name = "mine"' in out and "bandwidth_gb_s = 2000" in out


def test_invalid_file_exits_nonzero_with_one_line(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('base = "sn40l"\n[pmu]\nbanks = 0\n')
    code, out, err = cli(capsys, "arch", "show", path)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "field 'pmu.banks': Input should be greater than or equal to 1 (got 0)" in err
    code, _, err = cli(capsys, "arch", "show", "sn99")
    assert code != 0 and "unknown architecture 'sn99'" in err
