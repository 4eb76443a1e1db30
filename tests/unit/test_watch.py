"""engine/watch.py, the pieces both servers keep their index fresh with: the writer thread's debounce, merging and
pre-emption, the file watch's events, and which paths never concern an index."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engine import FileWatch, IndexWriter, never_indexed
from tests.support import wait_until


def test_changes_are_debounced_merged_and_a_folder_wins() -> None:
    batches: list[dict] = []
    w = IndexWriter(batches.append)
    w.start()
    try:
        w.note_changes("a", {"x.py": "changed", "d": "dir"}, 0.2)
        w.note_changes("a", {"x.py": "deleted", "d": "changed"}, 0.2)
        w.note_changes("b", {"y.py": "changed"}, 0.2)
        time.sleep(0.05)
        assert batches == []  # not due yet
        wait_until(lambda: batches)
        assert batches == [{"a": {"x.py": "deleted", "d": "dir"}, "b": {"y.py": "changed"}}]
    finally:
        w.stop()


def test_a_change_preempts_running_work_which_applies_it_and_resumes() -> None:
    order: list[str] = []
    w = IndexWriter(lambda batch: order.append(f"apply {sorted(batch['k'])}"))

    def long_index() -> None:
        ev = threading.Event()
        w.preempt = ev
        order.append("index starts")
        assert ev.wait(10)  # a note_changes sets it
        order.append("index pre-empted")
        w.preempt = None
        w.flush_due_updates()
        order.append("index resumes")

    w.submit("index", long_index)
    w.submit("index", long_index)  # the same key is queued once
    w.start()
    try:
        wait_until(lambda: order)
        w.note_changes("k", {"saved.py": "changed"}, 0.05)
        wait_until(lambda: "index resumes" in order)
        time.sleep(0.1)
        assert order == ["index starts", "index pre-empted", "apply ['saved.py']", "index resumes"]
    finally:
        w.stop()


def test_a_failing_task_is_reported_and_the_thread_goes_on() -> None:
    seen: list[str] = []
    w = IndexWriter(lambda batch: None, on_error=lambda exc: seen.append(str(exc)))
    w.submit("", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    w.submit("", lambda: seen.append("next"))
    w.start()
    try:
        wait_until(lambda: len(seen) == 2)
        assert seen == ["boom", "next"]
    finally:
        w.stop()
    assert not w.is_alive()


def test_the_file_watch_reports_workspace_relative_changes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    seen: dict[str, str] = {}
    fw = FileWatch()
    fw.add("root", tmp_path, seen.update, ignored=lambda rel: never_indexed(rel, tmp_path, tmp_path / ".sg"))
    fw.start()
    try:
        (tmp_path / "src" / "a.py").write_text("x = 1\n")
        (tmp_path / ".git" / "index").write_text("noise")
        wait_until(lambda: seen.get("src/a.py") == "changed", timeout=10)
        (tmp_path / "src" / "a.py").rename(tmp_path / "src" / "b.py")
        wait_until(lambda: seen.get("src/a.py") == "deleted" and seen.get("src/b.py") == "changed", timeout=10)
        (tmp_path / "pkg").mkdir()
        wait_until(lambda: seen.get("pkg") == "dir", timeout=10)
        assert not any(k.startswith(".git") for k in seen)
    finally:
        fw.remove("root")
        fw.stop()


def test_never_indexed(tmp_path: Path) -> None:
    index = tmp_path / ".sg"
    assert never_indexed(".git/HEAD", tmp_path, index) and never_indexed(".hg", tmp_path, index)
    assert never_indexed(".sg/index.sqlite", tmp_path, index) and never_indexed("", tmp_path, index)
    assert not never_indexed("src/.gitignore", tmp_path, index) and not never_indexed("src/a.py", tmp_path, index)
