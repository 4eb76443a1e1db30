"""engine.discover: ignore rules, every skip reason, symlink safety, read/decode checks, speed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from engine.discover import check_file, content_hash, read_bytes, read_text, walk
from engine.errors import BadQuery
from engine.records import SKIP_REASONS, FileEntry, Skip
from engine.settings import IndexSettings

BENCH = Path(__file__).parents[2] / ".." / "shared" / "bench"


def make(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return root


def run(root: Path, settings: IndexSettings | None = None) -> tuple[dict[str, FileEntry], dict[str, Skip]]:
    items = list(walk(root, settings or IndexSettings()))
    for it in items:
        assert isinstance(it, (FileEntry, Skip))
        if isinstance(it, Skip):
            assert it.reason in SKIP_REASONS and it.detail
    files = {e.path: e for e in items if isinstance(e, FileEntry)}
    skips = {s.path: s for s in items if isinstance(s, Skip)}
    return files, skips


# ---------------------------------------------------------------------------------------------------- basics


def test_entries_sorted_posix_and_complete(tmp_path: Path) -> None:
    make(tmp_path, {"b.py": "x = 1\n", "a.txt": "a", "a/z.py": "z", "a/b/c.md": "# c", "A.py": "", "a-b.py": "y"})
    items = list(walk(tmp_path, IndexSettings()))
    paths = [i.path for i in items]
    assert paths == sorted(paths) == ["A.py", "a-b.py", "a.txt", "a/b/c.md", "a/z.py", "b.py"]
    e = next(i for i in items if i.path == "a/b/c.md")
    assert isinstance(e, FileEntry)
    st = os.stat(tmp_path / "a" / "b" / "c.md")
    assert e.abs_path == str(tmp_path / "a" / "b" / "c.md")
    assert (e.size, e.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert list(walk(tmp_path, IndexSettings())) == items  # deterministic


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BadQuery):
        list(walk(tmp_path / "missing", IndexSettings()))


# ---------------------------------------------------------------------------------------------------- ignore rules


def test_gitignore_nested_negation_and_anchoring(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "*.log\n!keep.log\n/top_only.txt\ngenerated/\n# comment\n",
        "a.log": "x", "keep.log": "x", "top_only.txt": "x", "src/top_only.txt": "x",
        "src/generated/g.py": "x", "src/main.py": "x",
        "sub/.gitignore": "!sub_keep.log\nlocal.txt\n/anchored.txt\n",
        "sub/sub_keep.log": "x", "sub/other.log": "x", "sub/local.txt": "x", "sub/deep/local.txt": "x",
        "sub/anchored.txt": "x", "sub/deep/anchored.txt": "x",
    })
    files, skips = run(tmp_path)
    assert not skips
    assert set(files) == {
        ".gitignore", "keep.log", "src/top_only.txt", "src/main.py", "sub/.gitignore", "sub/sub_keep.log",
        "sub/deep/anchored.txt"}


def test_ignored_directory_cannot_be_reincluded(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "logs/\n!logs/keep.txt\n", "logs/keep.txt": "x", "ok.txt": "x"})
    files, _ = run(tmp_path)
    assert set(files) == {".gitignore", "ok.txt"}


def test_sgignore_nested_and_overrides_gitignore(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "*.log\n",
        ".sgignore": "!important.log\nfixtures/\n",
        "important.log": "x", "noise.log": "x", "fixtures/big.json": "{}",
        "pkg/.sgignore": "*.snap\n", "pkg/a.snap": "x", "a.snap": "x", "pkg/mod.py": "x",
    })
    files, _ = run(tmp_path)
    assert set(files) == {".gitignore", ".sgignore", "important.log", "pkg/.sgignore", "pkg/mod.py", "a.snap"}


def test_default_and_settings_excludes(tmp_path: Path) -> None:
    make(tmp_path, {
        "node_modules/lib/index.js": "x", ".git/config": "x", "__pycache__/m.pyc": "x", "build/out.py": "x",
        "deep/node_modules/x.js": "x", "pkg.egg-info/PKG-INFO": "x", "app.min.js.map": "x",
        ".venv/lib.py": "x", "src/app.py": "x", "src/schema.gen.py": "x", "dist/bundle.js": "x",
    })
    files, _ = run(tmp_path, IndexSettings(excludes=["*.gen.py"]))
    assert set(files) == {"src/app.py"}
    # A repository that tracks dist/ re-includes it; .git stays excluded whatever the ignore files say.
    make(tmp_path, {".gitignore": "!dist/\n!.git/\n"})
    files, _ = run(tmp_path, IndexSettings(excludes=["*.gen.py"]))
    assert set(files) == {".gitignore", "src/app.py", "dist/bundle.js"}
    # settings.excludes may also re-include a default exclude
    files, _ = run(tmp_path, IndexSettings(excludes=["!build/"]))
    assert "build/out.py" in files


def test_git_info_exclude_and_index_dir(tmp_path: Path) -> None:
    make(tmp_path, {".git/info/exclude": "private.txt\n", "private.txt": "x", "idx/store.db": "x", "a.py": "x"})
    files, _ = run(tmp_path, IndexSettings(index_dir="idx"))
    assert set(files) == {"a.py"}


def test_bad_ignore_patterns_do_not_break_the_walk(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "[\n***/\\\n*.tmp\n", "a.tmp": "x", "a.py": "x"})
    files, _ = run(tmp_path)
    assert "a.py" in files and "a.tmp" not in files


# ---------------------------------------------------------------------------------------------------- skip reasons


def test_binary_by_nul_and_by_extension(tmp_path: Path) -> None:
    make(tmp_path, {
        "data.bin2": b"abc\x00def", "late.txt": b"a" * 9000 + b"\x00",  # NUL after the first 8 KiB
        "img.PNG": b"not really a png", "lib.so": b"x", "a.zip": b"PK",
        "utf16.txt": "héllo 世界\n".encode("utf-16"),  # BOM + NUL bytes: still text
    })
    files, skips = run(tmp_path)
    assert skips["data.bin2"].reason == "binary" and "offset 3" in skips["data.bin2"].detail
    assert {skips[p].reason for p in ("img.PNG", "lib.so", "a.zip")} == {"binary"}
    assert set(files) == {"late.txt", "utf16.txt"}
    assert read_text(files["utf16.txt"], IndexSettings()) == "héllo 世界\n"
    late = read_text(files["late.txt"], IndexSettings())  # the reader sees the whole file
    assert isinstance(late, Skip) and late.reason == "binary"


def test_too_large(tmp_path: Path) -> None:
    make(tmp_path, {"big.py": "x" * 101, "ok.py": "x" * 100})
    files, skips = run(tmp_path, IndexSettings(max_file_bytes=100))
    assert skips["big.py"].reason == "too-large" and "101" in skips["big.py"].detail
    assert set(files) == {"ok.py"}
    # Growing after the walk is caught by the reader.
    (tmp_path / "ok.py").write_text("x" * 500)
    got = read_text(files["ok.py"], IndexSettings(max_file_bytes=100))
    assert isinstance(got, Skip) and got.reason == "too-large"


def test_undecodable_with_byte_offset(tmp_path: Path) -> None:
    make(tmp_path, {"latin1.py": "x = 'caf\xe9'\n".encode("latin-1"), "bad16.txt": b"\xff\xfe\x00\xd8"})
    files, _ = run(tmp_path)
    got = read_text(files["latin1.py"], IndexSettings())
    assert isinstance(got, Skip) and got.reason == "undecodable" and "byte 8" in got.detail
    got = read_text(files["bad16.txt"], IndexSettings())  # lone surrogate in UTF-16
    assert isinstance(got, Skip) and got.reason == "undecodable"


def test_read_text_keeps_line_endings_and_strips_bom(tmp_path: Path) -> None:
    make(tmp_path, {"crlf.py": b"\xef\xbb\xbfa = 1\r\nb = 2\rc = 3\n"})
    files, _ = run(tmp_path)
    assert read_text(files["crlf.py"], IndexSettings()) == "a = 1\r\nb = 2\rc = 3\n"
    assert read_bytes(files["crlf.py"], IndexSettings()) == b"\xef\xbb\xbfa = 1\r\nb = 2\rc = 3\n"


def test_non_utf8_file_name(tmp_path: Path) -> None:
    make(tmp_path, {"ok.py": "x"})
    fd = os.open(os.fsencode(tmp_path) + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    files, skips = run(tmp_path)
    assert set(files) == {"ok.py"}
    (skip,) = skips.values()
    assert skip.reason == "undecodable" and skip.path == "bad\\xff.py"
    skip.path.encode("utf-8")  # storable


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    files, skips = run(tmp_path)  # would hang if the walk opened it
    assert skips["pipe"].reason == "unreadable" and "regular" in skips["pipe"].detail


def test_dangling_symlink_is_unreadable(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "x"})
    os.symlink(tmp_path / "gone.py", tmp_path / "link.py")
    _, skips = run(tmp_path)
    assert skips["link.py"].reason == "unreadable" and "dangling" in skips["link.py"].detail


def test_permission_denied_is_unreadable(unprivileged) -> None:
    """A real EACCES: as root (the CI case) the walk runs with the effective uid dropped to `nobody`, because
    root ignores file modes; otherwise chmod 000 is enough."""
    base = Path(tempfile.mkdtemp(prefix="sg-perm-"))  # not under pytest's 0700 tmp dir: `nobody` must traverse it
    try:
        os.chmod(base, 0o755)
        make(base, {"ok.py": "x = 1\n", "secret.py": "x = 2\n", "locked/inner.py": "y"})
        for p in (base / "ok.py", base / "secret.py", base / "locked" / "inner.py"):
            os.chmod(p, 0o644)
        os.chmod(base / "secret.py", 0o000)
        os.chmod(base / "locked", 0o000)
        settings = IndexSettings()
        run(base, settings)  # warm up lazy imports while still allowed to read the interpreter's files
        with unprivileged():
            files, skips = run(base, settings)
            entry = check_file(base, "ok.py", settings)
        assert set(files) == {"ok.py"} and isinstance(entry, FileEntry)
        assert skips["secret.py"].reason == "unreadable" and "permission" in skips["secret.py"].detail
        assert skips["locked"].reason == "unreadable" and "directory" in skips["locked"].detail
    finally:
        for p in (base / "secret.py", base / "locked"):
            os.chmod(p, 0o755)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- symlinks


def test_symlink_outside_file_and_dir(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    make(outside, {"secret.py": "x", "d/s.py": "y"})
    make(ws, {"a.py": "x"})
    os.symlink(outside / "secret.py", ws / "leak.py")
    os.symlink(outside / "d", ws / "leakdir")
    os.symlink("../outside/nothing", ws / "dangling_out")  # dangling and outside: outside wins
    files, skips = run(ws)
    assert set(files) == {"a.py"}
    assert {p: s.reason for p, s in skips.items()} == {
        "leak.py": "symlink-outside", "leakdir": "symlink-outside", "dangling_out": "symlink-outside"}


def test_symlink_loops(tmp_path: Path) -> None:
    make(tmp_path, {"d/a.py": "x", "d/e/b.py": "y"})
    os.symlink("..", tmp_path / "d" / "e" / "up")  # points to its own ancestor
    os.symlink(".", tmp_path / "d" / "self")
    os.symlink("selfloop", tmp_path / "selfloop")  # a link to itself (ELOOP)
    os.symlink("pong", tmp_path / "ping")
    os.symlink("ping", tmp_path / "pong")
    files, skips = run(tmp_path)
    assert set(files) == {"d/a.py", "d/e/b.py"}
    assert {p: s.reason for p, s in skips.items()} == {
        "d/e/up": "symlink-loop", "d/self": "symlink-loop", "selfloop": "symlink-loop",
        "ping": "symlink-loop", "pong": "symlink-loop"}


def test_symlinks_inside_followed_at_most_once(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "vendor_store/\n",
        "src/real.py": "x", "vendor_store/lib/v.py": "y",
    })
    os.symlink("src/real.py", tmp_path / "alias.py")  # file link inside: accepted under its own path
    os.symlink("src", tmp_path / "a_src_link")  # sorts before src/: still refused, src/ is walked anyway
    os.symlink("vendor_store/lib", tmp_path / "vendor")  # target ignored: followed once
    os.symlink("vendor_store/lib", tmp_path / "vendor2")  # ... but only once
    files, skips = run(tmp_path)
    assert set(files) == {".gitignore", "alias.py", "src/real.py", "vendor/v.py"}
    assert skips["a_src_link"].reason == "symlink-loop" and "src" in skips["a_src_link"].detail
    assert skips["vendor2"].reason == "symlink-loop"
    assert files["alias.py"].abs_path == str(tmp_path / "alias.py")
    assert read_text(files["vendor/v.py"], IndexSettings()) == "y"


def test_read_refuses_file_that_escaped_since_listing(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    make(outside, {"secret.py": "TOP SECRET"})
    make(ws, {"a.py": "x"})
    files, _ = run(ws)
    (ws / "a.py").unlink()
    os.symlink(outside / "secret.py", ws / "a.py")
    got = read_text(files["a.py"], IndexSettings())
    assert isinstance(got, Skip) and got.reason == "symlink-outside"


# ---------------------------------------------------------------------------------------------------- vanishing


@pytest.mark.timeout(20)
def test_vanished_between_walk_and_read(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "x", "b.py": "y", "c.py": "z"})
    files, _ = run(tmp_path)
    (tmp_path / "a.py").unlink()
    got = read_text(files["a.py"], IndexSettings())
    assert isinstance(got, Skip) and got.reason == "vanished"
    (tmp_path / "b.py").unlink()
    (tmp_path / "b.py").mkdir()  # replaced by a directory
    got = read_bytes(files["b.py"], IndexSettings())
    assert isinstance(got, Skip) and got.reason == "vanished"
    (tmp_path / "c.py").unlink()
    os.mkfifo(tmp_path / "c.py")  # replaced by a FIFO: reading it must not block
    got = read_text(files["c.py"], IndexSettings())
    assert isinstance(got, Skip) and got.reason == "vanished"


def test_files_vanishing_mid_walk_are_dropped(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "x", "b.py": "y", "c/d.py": "z", "e.py": "w"})
    it = walk(tmp_path, IndexSettings())
    first = next(it)
    assert first.path == "a.py"
    (tmp_path / "b.py").unlink()
    shutil.rmtree(tmp_path / "c")
    rest = [i.path for i in it]
    assert rest == ["e.py"]


# ---------------------------------------------------------------------------------------------------- check_file


def test_check_file_agrees_with_walk(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    make(outside, {"s.py": "x"})
    make(ws, {
        ".gitignore": "*.log\nignored_dir/\n", "src/a.py": "x", "x.log": "x", "ignored_dir/f.py": "x",
        "img.png": b"\x89PNG", "node_modules/m.js": "x",
    })
    os.symlink(outside / "s.py", ws / "src" / "leak.py")
    os.symlink("src", ws / "srclink")
    s = IndexSettings()
    files, skips = run(ws, s)
    assert check_file(ws, "src/a.py", s) == files["src/a.py"]
    assert check_file(ws, "src\\a.py" if os.sep == "\\" else "src/./a.py", s) == files["src/a.py"]
    assert check_file(ws, str(ws / "src" / "a.py"), s) == files["src/a.py"]  # absolute inside the root
    assert check_file(ws, "x.log", s) is None
    assert check_file(ws, "ignored_dir/f.py", s) is None
    assert check_file(ws, "node_modules/m.js", s) is None
    assert check_file(ws, "src/missing.py", s) is None
    assert check_file(ws, "src", s) is None  # a directory
    assert check_file(ws, "img.png", s) == skips["img.png"]
    assert check_file(ws, "src/leak.py", s) == skips["src/leak.py"]
    got = check_file(ws, "srclink/a.py", s)
    assert isinstance(got, Skip) and got.reason == "symlink-loop"
    for bad in ("../outside/s.py", "src/../../outside/s.py", str(outside / "s.py"), "..", ""):
        with pytest.raises(BadQuery):
            check_file(ws, bad, s)


def test_content_hash() -> None:
    h = content_hash("def f():\n    return 1\n")
    assert len(h) == 32 and int(h, 16) >= 0
    assert h == content_hash("def f():\n    return 1\n") != content_hash("def f():\n    return 2\n")
    assert content_hash("日本語 🎉") != content_hash("")
    content_hash("\ud800")  # lone surrogate: no exception


# ---------------------------------------------------------------------------------------------------- a real corpus


def test_walk_cosqa_corpus() -> None:
    """Every file of a 6,267-file corpus is walked (its speed is bench/ work, not a unit test's)."""
    corpus = BENCH / "cosqa" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"bench data not present at {corpus}")
    items = list(walk(corpus, IndexSettings()))
    assert len(items) >= 6000 and all(isinstance(i, FileEntry) for i in items)
