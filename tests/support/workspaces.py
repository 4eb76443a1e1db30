"""Workspaces for reliability tests and benches: a small one with a secret file beside it, and one holding every
kind of bad input (binary, huge, bad UTF-8, symlink loops and escapes, FIFOs, odd names), with the outcome each
must have."""

from __future__ import annotations

import os
from pathlib import Path

from engine import Engine, load_settings

SECRET = "TOPSECRETMARKER"
WS_FILES = {
    "src/mathutil.py": "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
                       "    return a\n\n\ndef sum_of_squares(values):\n    return sum(v * v for v in values)\n",
    "docs/guide.md": "# Installation guide\n\nRun the installer.\n",
}


def small_workspace(base: Path) -> tuple[Path, Path]:
    """A workspace plus a secret file next to it (outside) that must never be read."""
    root = base / "ws"
    for rel, text in WS_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    outside = base / "secret.txt"
    outside.write_text(f"def leak():\n    return '{SECRET}'\n", encoding="utf-8")
    return root, outside


def lexical_engine(root: Path, index_dir: Path, **overrides: dict) -> Engine:
    opts = {"models": {"enabled": False}, "index": {"index_dir": str(index_dir)}}
    for key, val in overrides.items():
        opts.setdefault(key, {}).update(val)
    return Engine(root, load_settings(root, opts))


def bad_workspace(base: Path) -> tuple[Path, Path, dict[str, str]]:
    """Every kind of bad input; returns (root, outside dir, expected outcome per path: 'indexed' or a skip
    reason)."""
    root, outside = base / "ws", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.py").write_text(f"def leak():\n    return '{SECRET}'\n", encoding="utf-8")
    (base / "outside_secret.py").write_text(f"X = '{SECRET}'\n", encoding="utf-8")
    exp: dict[str, str] = {}

    def put(rel: str, data: bytes | str, outcome: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        exp[rel] = outcome

    put("ok.py", "def normal_function():\n    return 1\n", "indexed")
    put("image.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2000), "binary")
    put("blob.py", b"def f():\n    pass\n\x00\x01\x02" + os.urandom(500), "binary")
    put("nul_in_text.txt", "hello\x00world\n", "binary")
    put("latin1.py", b"def caf\xe9():\n    return '\xe9t\xe9'\n", "undecodable")
    put("broken_utf8.md", b"# Title\n\n\xc3\x28 bad sequence\n", "undecodable")
    with open(root / "huge.py", "wb") as fh:  # 50 MB, sparse
        fh.truncate(50 * 1024 * 1024)
    exp["huge.py"] = "too-large"
    put("bundle.min.js", "\n".join(f"var a{i}=function(b){{return b*{i}}};" for i in range(10_000)), "indexed")
    put("oneline.min.js", "var x=" + "+".join(str(i) for i in range(80_000)) + ";", "indexed")
    put("name with spaces.py", "def spaced_name_function():\n    pass\n", "indexed")
    put("ユニコード/日本語ファイル.py", "def unicode_path_function():\n    pass\n", "indexed")
    put("new\nline.py", "def newline_name_function():\n    pass\n", "indexed")
    put("/".join(f"d{i}" for i in range(100)) + "/deep.py", "def deeply_nested_function():\n    pass\n", "indexed")
    (root / "loop").mkdir()
    os.symlink("../loop", root / "loop" / "again")
    exp["loop/again"] = "symlink-loop"
    os.symlink(outside / "secret.py", root / "link_out.py")
    exp["link_out.py"] = "symlink-outside"
    os.symlink(outside, root / "dir_out")
    exp["dir_out"] = "symlink-outside"
    os.symlink("../outside_secret.py", root / "relative_out.py")
    exp["relative_out.py"] = "symlink-outside"
    os.symlink(root / "does-not-exist.py", root / "dangling.py")
    exp["dangling.py"] = "unreadable"
    os.mkfifo(root / "pipe.py")
    exp["pipe.py"] = "any"  # a FIFO must never hang the walk; skipped or ignored
    return root, outside, exp
