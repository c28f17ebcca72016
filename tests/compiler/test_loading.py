"""load_module / save_module: dispatch by suffix and content, atomic writes, weights beside the IR."""

import os
import sys
import types

import ml_dtypes
import numpy as np
import pytest

from rduflow.compiler import loading
from rduflow.compiler.demo import build_demo
from rduflow.compiler.loading import LoadError, load_module, save_module
from rduflow.ir import (Builder, ExternalFile, Graph, InMemory, Module, NpzEntry, ParseError, TensorType, parse_file,
                        print_module, run)
from rduflow.ir.attributes import quote
from rduflow.ir.errors import RduflowError
from hostile_paths import ESCAPES, hostile_location

TEXT = """module { graph @main(%x: f32[2]) -> (f32[2]) {
    %e = exp(%x) : f32[2]
    return %e as "y" } }
"""


def test_ir_text_by_suffix_and_by_content(tmp_path):
    for name in ("m.rdu", "m.txt", "m"):
        (tmp_path / name).write_text(TEXT)
        m = load_module(tmp_path / name)
        assert [op.opname for op in m.main.ops] == ["exp"]


def test_missing_file_directory_and_parse_error(tmp_path):
    with pytest.raises(LoadError, match=r"nope.rdu: no such file"):
        load_module(tmp_path / "nope.rdu")
    with pytest.raises(LoadError, match=r"is a directory"):
        load_module(tmp_path)
    (tmp_path / "bad.rdu").write_text(TEXT.replace("exp(%x)", "exp(%x"))
    with pytest.raises(ParseError, match=r"bad.rdu:2:\d+:"):
        load_module(tmp_path / "bad.rdu")


@pytest.fixture
def fake_importer(monkeypatch):
    """Stands in for the ONNX importer (tested in its own area) to check what load_module hands it."""
    calls = []
    try:
        import rduflow.compiler.frontend  # noqa: F401
    except ModuleNotFoundError:
        monkeypatch.setitem(sys.modules, "rduflow.compiler.frontend", types.ModuleType("rduflow.compiler.frontend"))
    fake = types.ModuleType("rduflow.compiler.frontend.onnx")

    def import_onnx(path, *, shapes_only=False):
        calls.append((path.name, shapes_only))
        return Module()

    fake.import_onnx = import_onnx
    monkeypatch.setitem(sys.modules, "rduflow.compiler.frontend.onnx", fake)
    return calls


def test_onnx_by_suffix_and_by_protobuf_content(tmp_path, fake_importer):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    data = helper.make_model(graph).SerializeToString()
    (tmp_path / "a.onnx").write_bytes(data)
    (tmp_path / "b.model").write_bytes(data)
    load_module(tmp_path / "a.onnx", shapes_only=True)
    load_module(tmp_path / "b.model")
    assert fake_importer == [("a.onnx", True), ("b.model", False)]
    onnx.checker.check_model(onnx.load_from_string(data))


def test_missing_importer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rduflow.compiler.frontend.onnx", None)  # makes the import fail
    (tmp_path / "a.onnx").write_bytes(b"\x08\x08")
    with pytest.raises(LoadError, match=r"a.onnx: cannot import ONNX models"):
        load_module(tmp_path / "a.onnx")


# -- saving ------------------------------------------------------------------------------------------------
def test_in_memory_weights_go_to_a_sidecar_npz_and_run_the_same(tmp_path):
    m = build_demo()
    ids = {"ids": np.array([[3, 1, 4, 1, 5]], np.int64)}
    written = save_module(m, tmp_path / "demo.rdu")
    assert written == [tmp_path / "demo.npz", tmp_path / "demo.rdu"]
    text = (tmp_path / "demo.rdu").read_text()
    assert 'weight @wte : f32[64, 32] = npz("demo.npz", "wte")' in text
    assert all(isinstance(w.source, InMemory) for w in m.weights.values()), "saving must not change the module"
    back = parse_file(tmp_path / "demo.rdu")
    np.testing.assert_array_equal(run(back, ids)["logits"], run(m, ids)["logits"])
    assert sorted(os.listdir(tmp_path)) == ["demo.npz", "demo.rdu"]


def test_awkward_weight_names_and_dtypes_survive(tmp_path):
    m = Module()
    g = m.add_graph(Graph("main", [], []))
    b = Builder(g, m)
    bf = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    outs = [b.weight("file", TensorType([2], "bf16"), InMemory(bf)),
            b.weight("allow_pickle", TensorType([2], "f32"), InMemory(np.float32([1, 2]))),
            b.weight("a/b:c", TensorType([1], "i64"), InMemory(np.int64([7])))]
    g.set_outputs(outs, ["p", "q", "r"])
    save_module(m, tmp_path / "w.rdu")
    got = run(parse_file(tmp_path / "w.rdu"), {})
    assert got["p"].dtype == bf.dtype and got["p"].tolist() == bf.tolist()
    assert got["q"].tolist() == [1, 2] and got["r"].tolist() == [7]


def test_weights_outside_the_output_folder_are_copied_beside_it(tmp_path):
    """load_module reads weight files only inside the model's folder, so save_module never
    writes a path that leaves it: such data moves into the .npz; same-folder paths stay."""
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    np.float32([1, 2, 3]).tofile(tmp_path / "src" / "w.bin")
    text = f"""module {{
      weight @w : f32[3] = external("w.bin", offset=0)
      weight @abs : f32[3] = external("{tmp_path / 'src' / 'w.bin'}", offset=0)
      graph @main() -> (f32[3]) {{
        %w = weight() {{ref = @w}} : f32[3]
        return %w as "w" }} }}"""
    (tmp_path / "src" / "m.rdu").write_text(text)
    m = parse_file(tmp_path / "src" / "m.rdu")
    save_module(m, tmp_path / "out" / "m.rdu")
    saved = parse_file(tmp_path / "out" / "m.rdu")
    assert saved.weights["w"].source == NpzEntry("m.npz", "w")
    assert saved.weights["abs"].source == NpzEntry("m.npz", "abs")
    assert run(saved, {})["w"].tolist() == [1, 2, 3]
    assert run(load_module(tmp_path / "out" / "m.rdu"), {})["w"].tolist() == [1, 2, 3]
    save_module(m, tmp_path / "src" / "m2.rdu")  # same folder: paths unchanged
    assert parse_file(tmp_path / "src" / "m2.rdu").weights["w"].source == ExternalFile("w.bin", 0)


def test_resaving_over_an_npz_keeps_the_weights_it_held(tmp_path):
    m = build_demo()
    save_module(m, tmp_path / "d.rdu")
    back = parse_file(tmp_path / "d.rdu")
    assert isinstance(back.weights["wte"].source, NpzEntry)
    extra = Builder(back.main, back).weight("extra", TensorType([1], "f32"), InMemory(np.float32([9])))
    back.main.set_outputs(back.main.outputs + [extra], back.main.output_names + ["extra"])
    save_module(back, tmp_path / "d.rdu")
    again = run(parse_file(tmp_path / "d.rdu"), {"ids": np.array([[1, 2]], np.int64)})
    assert again["extra"].tolist() == [9]
    np.testing.assert_array_equal(again["logits"], run(m, {"ids": np.array([[1, 2]], np.int64)})["logits"])


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "m.rdu"
    target.write_text("old contents")

    def broken(_module):
        raise RuntimeError("printer broke")

    monkeypatch.setattr(loading, "print_module", broken)
    with pytest.raises(RuntimeError):
        save_module(build_demo(), target)
    assert target.read_text() == "old contents"
    # No temp files; and no sidecar either: a module's files are renamed into place together (issue 15).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rdu"]

    monkeypatch.setattr(loading, "print_module", print_module)

    def fail_write(f, arrays):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loading, "_write_npz", fail_write)
    with pytest.raises(LoadError, match=r"m2.npz: cannot write: No space left on device"):
        save_module(build_demo(), tmp_path / "m2.rdu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rdu"]


def test_bad_save_targets(tmp_path):
    with pytest.raises(LoadError, match=r"cannot be saved as .npz"):
        save_module(build_demo(), tmp_path / "m.npz")
    with pytest.raises(LoadError, match=r"folder .*nowhere does not exist"):
        save_module(build_demo(), tmp_path / "nowhere" / "m.rdu")


def test_saved_files_have_ordinary_permissions(tmp_path):
    save_module(build_demo(), tmp_path / "m.rdu")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.rdu").stat().st_mode & 0o777 == 0o666 & ~mask


def test_constants_too_large_to_print_inline_keep_their_data(tmp_path):
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([20, 20], "f32")], ["x"]))
    b = Builder(g, m)
    big = np.arange(400, dtype=np.float32).reshape(20, 20)
    region = Graph("region", [TensorType([20, 20], "f32")], ["y"])
    rb = Builder(region, m)
    region.set_outputs([rb.emit("mul", region.args[0], rb.constant(big, name="table"))])
    grouped = b.op("group", [g.args[0]], regions=[region], result_types=[TensorType([20, 20], "f32")]).result
    g.set_outputs([b.emit("add", grouped, b.constant(big, name="table"))], ["y"])
    save_module(m, tmp_path / "big.rdu")
    text = (tmp_path / "big.rdu").read_text()
    assert 'weight @table : f32[20, 20] = npz("big.npz", "table")' in text and "@table.1" in text
    x = {"x": np.ones((20, 20), np.float32)}
    np.testing.assert_array_equal(run(parse_file(tmp_path / "big.rdu"), x)["y"], run(m, x)["y"])
    assert [op.opname for op in g.ops] == ["group", "constant", "add"], "saving must not change the module"


# -- weight paths in IR text are confined like ONNX external data ------------------------------------------
def _module_text(source: str) -> str:
    return f"""module {{
      weight @w : f32[4] = {source}
      graph @main() -> (f32[4]) {{
        %w = weight() {{ref = @w}} : f32[4]
        return %w as "w" }} }}"""


@pytest.mark.parametrize("form", ["external({}, offset=0)", 'onnx({}, "w")', 'npz({}, "w")'])
@pytest.mark.parametrize("kind", ESCAPES)
def test_ir_text_weight_paths_must_stay_in_the_folder(tmp_path, kind, form):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "m.rdu").write_text(_module_text(form.format(quote(hostile_location(kind, folder)))))
    with pytest.raises(LoadError) as e:
        load_module(folder / "m.rdu")
    message = str(e.value)
    assert "\n" not in message and "m.rdu: weight @w: file" in message and "model's folder" in message


def test_ir_text_reading_etc_passwd_is_one_line_from_run(tmp_path, capsys):
    from rduflow.inference.cli import main

    (tmp_path / "m.rdu").write_text(_module_text('external("/etc/passwd", offset=0)'))
    assert main(["run", str(tmp_path / "m.rdu"), "--output", str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rduflow: error: ") and err.count("\n") == 1 and "is absolute" in err
    assert not (tmp_path / "o.npz").exists()


def test_weight_files_inside_the_folder_still_load(tmp_path):
    (tmp_path / "sub").mkdir()
    np.float32([1, 2, 3, 4]).tofile(tmp_path / "sub" / "w.bin")
    (tmp_path / "m.rdu").write_text(_module_text('external("sub/./w.bin", offset=0)'))
    assert run(load_module(tmp_path / "m.rdu"), {})["w"].tolist() == [1, 2, 3, 4]


def test_an_onnx_initializer_cannot_reach_out_through_its_own_external_data(tmp_path):
    """``onnx("m.onnx", ...)`` reads the ONNX file's initializer; its external data is confined as well."""
    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\1" * 16)
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../secret.bin")
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w", TensorProto.FLOAT, [4])], [t])
    onnx.save(helper.make_model(graph), folder / "m.onnx")
    (folder / "m.rdu").write_text(_module_text('onnx("m.onnx", "w")'))
    with pytest.raises(RduflowError, match=r"initializer 'w': external data location '../secret.bin' leaves"):
        run(load_module(folder / "m.rdu"), {})


# -- outputs that cannot be written (issue 15) --------------------------------------------------

def _read_only(folder):
    """``folder`` made read-only; False when that does not bite (root ignores permissions)."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("x")
    except PermissionError:
        return True
    (folder / "probe").unlink()
    return False


def test_check_writable_names_the_path_and_the_reason(tmp_path):
    from rduflow.compiler.loading import check_folder, check_writable

    (tmp_path / "file.txt").write_text("a file")
    assert check_writable(tmp_path / "out.npz", "-o") == tmp_path / "out.npz"
    with pytest.raises(LoadError, match=r"^--output /nonexistent/o.npz: folder /nonexistent does not exist$"):
        check_writable("/nonexistent/o.npz", "--output")
    with pytest.raises(LoadError, match=r"^-o .*file.txt/out.npz: .*file.txt is not a folder$"):
        check_writable(tmp_path / "file.txt" / "out.npz", "-o")
    with pytest.raises(LoadError, match=r"is a folder, not a file name"):
        check_writable(tmp_path, "--trace")
    assert check_folder(tmp_path / "new" / "deeper", "-o") == tmp_path / "new" / "deeper"  # created later
    with pytest.raises(LoadError, match=r"file.txt is not a folder \(to hold .*file.txt/d\)"):
        check_folder(tmp_path / "file.txt" / "d", "-o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # the probes are gone


def test_check_writable_refuses_a_read_only_folder(tmp_path):
    from rduflow.compiler.loading import check_folder, check_writable

    ro = tmp_path / "ro"
    if not _read_only(ro):
        pytest.skip("running as root: permissions do not bite (the path-through-a-file cases cover the check)")
    try:
        with pytest.raises(LoadError, match=r"^-o .*ro/m.rdu: cannot write in folder .*ro: Permission denied$"):
            check_writable(ro / "m.rdu", "-o")
        with pytest.raises(LoadError, match=r"cannot write in folder .*ro \(to hold .*ro/out\): Permission denied"):
            check_folder(ro / "out", "-o")
        with pytest.raises(LoadError, match=r"m.rdu: cannot write: Permission denied"):
            save_module(build_demo(), ro / "m.rdu")
    finally:
        ro.chmod(0o755)


def test_output_files_are_renamed_together_or_not_at_all(tmp_path):
    from rduflow.compiler.loading import OutputFiles

    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(LoadError, match=r"b.txt: cannot write: No space left on device"):
        with OutputFiles() as files:
            files.write(tmp_path / "a.txt", lambda f: f.write(b"new a"))
            files.write(tmp_path / "b.txt", lambda f: (f.write(b"half"), _raise(OSError(28, "No space left on device"))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old a"
    with pytest.raises(KeyboardInterrupt):
        with OutputFiles() as files:
            files.write(tmp_path / "c.txt", lambda f: f.write(b"c"))
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with OutputFiles() as files:
        files.write(tmp_path / "a.txt", lambda f: f.write(b"new a"))
        files.write(tmp_path / "b.txt", lambda f: f.write(b"b"))
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "b.txt").read_text() == "b"


def _raise(e):
    raise e


def test_save_to_a_missing_folder_is_one_error(tmp_path):
    from rduflow.compiler.loading import save_arrays

    with pytest.raises(LoadError, match=r"^/nonexistent/o.npz: cannot write: No such file or directory$"):
        save_arrays("/nonexistent/o.npz", {"x": np.zeros(2)})


def test_a_file_size_limit_leaves_no_truncated_file(tmp_path):
    """Under ``ulimit -f`` a write stops part way (EFBIG): the error names the file, nothing is left."""
    script = (
        "import resource, sys\n"
        "import numpy as np\n"
        "from rduflow.compiler.loading import LoadError, save_arrays\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        f"    save_arrays({str(tmp_path / 'big.npz')!r}, {{'x': np.zeros(100000)}})\n"
        "except LoadError as e:\n"
        "    print(e)\n")
    import subprocess

    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{tmp_path / 'big.npz'}: cannot write: File too large"
    assert list(tmp_path.iterdir()) == []


def test_outputs_never_replace_a_device_and_write_through_links(tmp_path):
    """A rename over /dev/null would replace the device node itself (as root); a rename over a
    symbolic link would replace the link rather than the file it names."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="pipe: exists and is not a regular file"):
        loading.check_writable(fifo, "-o")
    with pytest.raises(LoadError, match="not a regular file"):
        save_module(build_demo(), fifo)
    assert fifo.is_fifo()
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.rdu"
    link.symlink_to(tmp_path / "real" / "m.rdu")
    save_module(build_demo(), link)
    assert link.is_symlink() and (tmp_path / "real" / "m.rdu").is_file() and (tmp_path / "real" / "m.npz").is_file()
    assert run(load_module(link), {"ids": np.array([[1, 2, 3]])})
