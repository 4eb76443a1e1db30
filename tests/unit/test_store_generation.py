"""The store's generation moves only when a write changes a row, so an index run over an unchanged workspace
leaves the saved ANN files current (a one-shot `sg search` then loads them instead of rebuilding them)."""

from __future__ import annotations

from engine.records import Skip
from engine.store import Store


def test_a_write_that_changes_nothing_keeps_the_generation(tmp_path):
    store = Store(tmp_path / "index.sqlite")
    gen = store.generation
    with store.write():
        pass
    assert store.generation == gen
    store.set_meta("some_key", "1")
    assert store.generation == gen + 1
    store.set_meta("some_key", "1")  # the same value: SQLite still counts the row as written
    assert store.generation >= gen + 1
    store.close()


def test_recording_the_same_skips_again_writes_nothing(tmp_path):
    store = Store(tmp_path / "index.sqlite")
    skips = [Skip("big.bin", "binary", "NUL bytes"), Skip("huge.py", "too-large", "3 MB")]
    with store.write() as con:
        Store.replace_skips(con, skips)
    gen = store.generation
    with store.write() as con:
        Store.replace_skips(con, list(reversed(skips)))
    assert store.generation == gen and store.skipped() == sorted(skips, key=lambda s: s.path)
    with store.write() as con:
        Store.replace_skips(con, skips[:1])
    assert store.generation == gen + 1 and store.skipped() == skips[:1]
    store.close()
