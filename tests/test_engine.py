"""Engine integration without models: incremental indexing by content hash, skips, lexical search, store integrity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import BadQuery
from engine.search import Engine
from engine.settings import load_settings

FILES = {
    "net/retry.py": '''
import time


def retry_with_backoff(fn, attempts=5, base=0.1):
    """Call fn, retrying with exponential backoff when it raises."""
    for i in range(attempts):
        try:
            return fn()
        except Exception:
            time.sleep(base * 2 ** i)
    return fn()
''',
    "io/files.py": '''
def read_json_file(path):
    """Load a JSON document from disk."""
    import json
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class ConfigLoader:
    """Reads configuration files."""

    def load_yaml(self, path):
        import yaml
        return yaml.safe_load(open(path))
''',
    "web/app.js": '''
// Parse the query string of a URL into an object.
function parseQueryString(url) {
  const out = {};
  new URL(url).searchParams.forEach((v, k) => { out[k] = v; });
  return out;
}
''',
    "docs/guide.md": "# Install\n\nRun pip install.\n\n# ファイルを開く\n\nファイルを開くには open() を使います。\n",
}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def lexical_engine(root: Path) -> Engine:
    return Engine(root, load_settings(root, {"models": {"enabled": False}}))


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write(tmp_path, FILES)
    return tmp_path


def test_index_and_lexical_search(ws: Path) -> None:
    eng = lexical_engine(ws)
    rep = eng.index()
    assert rep.files == 4 and rep.changed == 4 and rep.chunks >= 5
    res = eng.search("exponential backoff retry", mode="lexical")
    assert res.hits[0].path == "net/retry.py" and res.hits[0].symbol == "retry_with_backoff"
    assert res.hits[0].start_line >= 1 and "lexical" in res.hits[0].components
    res = eng.search("ConfigLoader load yaml", mode="lexical")
    assert res.hits[0].symbol == "ConfigLoader.load_yaml"
    res = eng.search("ファイルを開く", mode="lexical")
    assert res.hits[0].path == "docs/guide.md"
    # hybrid without models degrades to lexical, and says so
    res = eng.search("parse query string", k=3)
    assert res.hits[0].path == "web/app.js" and res.notes
    eng.close()


def _ids(eng: Engine) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for row in eng.store.iter_chunks():
        out.setdefault(row.path, set()).add(row.id)
    return out


def test_incremental_add_change_delete_rename(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    gen = eng.store.generation

    rep = eng.index()  # nothing changed: no writes of files or chunks
    assert rep.changed == 0 and rep.removed == 0 and _ids(eng) == before

    (ws / "io/files.py").write_text(FILES["io/files.py"] + "\n\ndef write_csv_rows(path, rows):\n    pass\n")
    rep = eng.index()
    after = _ids(eng)
    assert rep.changed == 1
    assert after["net/retry.py"] == before["net/retry.py"] and after["web/app.js"] == before["web/app.js"]
    assert after["io/files.py"] != before["io/files.py"]
    assert eng.search("write csv rows", mode="lexical").hits[0].symbol == "write_csv_rows"
    assert eng.store.generation > gen

    (ws / "web/app.js").unlink()
    rep = eng.index()
    assert rep.removed == 1 and "web/app.js" not in _ids(eng)
    assert all(h.path != "web/app.js" for h in eng.search("parseQueryString", mode="lexical").hits)

    (ws / "net/retry.py").rename(ws / "net/backoff.py")
    eng.index()
    paths = set(_ids(eng))
    assert "net/backoff.py" in paths and "net/retry.py" not in paths
    assert eng.store.integrity() == []
    eng.close()


def test_touch_without_change_keeps_chunks(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    p = ws / "net/retry.py"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rep = eng.index()
    assert rep.changed == 0 and _ids(eng) == before
    eng.close()


def test_update_files_touches_only_that_file(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    (ws / "net/retry.py").write_text("def jitter_delay(base):\n    return base * 1.5\n")
    rep = eng.update_files(["net/retry.py"])
    after = _ids(eng)
    assert rep.changed == 1 and rep.seconds < 1.0
    assert {p: v for p, v in after.items() if p != "net/retry.py"} == \
        {p: v for p, v in before.items() if p != "net/retry.py"}
    assert eng.search("jitter delay", mode="lexical").hits[0].path == "net/retry.py"
    (ws / "net/retry.py").unlink()
    eng.update_files(["net/retry.py"])
    assert "net/retry.py" not in _ids(eng)
    eng.close()


def test_skips_are_recorded(ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (ws / "big.py").write_text("x = 1\n" * 400_000)
    (ws / "bad.py").write_bytes(b"def f():\n    return '\xff\xfe'\n")
    eng = lexical_engine(ws)
    eng.index()
    reasons = {s.path: s.reason for s in eng.skipped()}
    assert reasons.get("blob.bin") == "binary"
    assert reasons.get("big.py") == "too-large"
    assert reasons.get("bad.py") == "undecodable"
    assert eng.status()["skipped"] == len(reasons)
    eng.close()


def test_index_dir_inside_workspace_is_not_indexed(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    assert not any(p.startswith(".sg") for p in _ids(eng))
    eng.close()


def test_bad_queries_are_rejected(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    with pytest.raises(BadQuery):
        eng.search("")
    with pytest.raises(BadQuery):
        eng.search("x" * 100_000)
    with pytest.raises(BadQuery):
        eng.search("retry", k=0)
    with pytest.raises(BadQuery):
        eng.search("retry", k=10**9)
    with pytest.raises(BadQuery):
        eng.search("retry", paths=["../../etc"])
    with pytest.raises(BadQuery):
        eng.search("retry", mode="telepathy")
    res = eng.search("retry json", mode="lexical", paths=["io"])
    assert res.hits and all(h.path.startswith("io/") for h in res.hits)
    eng.close()


def test_similar_excludes_itself(ws: Path) -> None:
    write(ws, {"io/more.py": 'def load_json(path):\n    import json\n    with open(path) as fh:\n'
                             '        return json.load(fh)\n'})
    eng = lexical_engine(ws)
    eng.index()
    res = eng.similar("io/files.py", 3, k=3, mode="lexical")
    assert res.hits and res.hits[0].path == "io/more.py"
    assert all(not (h.path == "io/files.py" and h.symbol == "read_json_file") for h in res.hits)
    with pytest.raises(BadQuery):
        eng.similar("../outside.py", 1)
    eng.close()
