"""Weight file locations that try to leave a model's folder, for the tests of every reader that must refuse them.

ONNX external data and the paths in IR text are refused by one check (``rduflow.ir.weights.confined_file``);
each reader's tests run it over all of these.
"""

from __future__ import annotations

import os
from pathlib import Path

ESCAPES = ["parent", "parent_after_descent", "parent_backslash", "absolute", "drive", "unc", "symlinked_file",
           "symlinked_folder", "symlink_loop", "device", "device_link", "proc", "proc_link", "fifo", "folder", "nul",
           "too_long"]


def hostile_location(kind: str, folder: Path) -> str:
    """A location, relative to ``folder`` (a model's folder, whose parent holds a secret file), of the given kind;
    creates the links, pipes and files it needs."""
    secret = folder.parent / "secret.bin"
    secret.write_bytes(b"secret!!" * 64)
    simple = {"parent": "../secret.bin", "parent_after_descent": "sub/../../secret.bin",
              "parent_backslash": "..\\secret.bin", "absolute": str(secret), "drive": "C:\\w.bin",
              "unc": "\\\\server\\share\\w.bin", "device": "/dev/zero", "proc": "/proc/self/environ",
              "nul": "w\0.bin", "too_long": "a" * 5000}
    if kind in simple:
        (folder / "sub").mkdir(exist_ok=True)
        return simple[kind]
    if kind == "symlinked_file":
        (folder / "link.bin").symlink_to(secret)
        return "link.bin"
    if kind == "symlinked_folder":
        (folder / "up").symlink_to(folder.parent, target_is_directory=True)
        return "up/secret.bin"
    if kind == "symlink_loop":
        (folder / "a.bin").symlink_to(folder / "b.bin")
        (folder / "b.bin").symlink_to(folder / "a.bin")
        return "a.bin"
    if kind == "device_link":
        (folder / "zero.bin").symlink_to("/dev/zero")
        return "zero.bin"
    if kind == "proc_link":
        (folder / "env.bin").symlink_to("/proc/self/environ")
        return "env.bin"
    if kind == "fifo":
        os.mkfifo(folder / "pipe.bin")  # reading it would block forever
        return "pipe.bin"
    if kind == "folder":
        (folder / "sub").mkdir(exist_ok=True)
        return "sub"
    raise ValueError(kind)
