"""The served workspace: its Engine, the one writer thread that indexes it (lexical pass, then models, then
embeddings) and applies file changes from the watcher, and the model warm-up. No MCP here."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine import Engine, FileWatch, IndexReport, IndexWriter, Settings, never_indexed

logger = logging.getLogger("sg_mcp")

WATCH_DEBOUNCE = 0.3  # seconds: changes come in bursts (an agent's multi-file edit, git checkout)
RESCAN_THRESHOLD = 500  # more changed paths than this: one incremental walk instead of per-file updates
OPEN_WAIT = 30.0  # how long a tool call waits for the index to open before it answers with an error


class NotReady(Exception):
    """The index cannot be used (it failed to open, or is not open yet): the message says why."""


class Workspace:
    """One workspace folder served for as long as the process runs."""

    def __init__(self, root: Path, settings: Settings, watch: bool = True, refuse: str = ""):
        self.root = root.resolve()
        self.refuse = refuse  # why this folder is not served (the tools say so), e.g. a home directory by accident
        self.settings = settings
        self.engine: Engine | None = None
        self.state = "opening"  # opening | indexing | ready | error
        self.error = ""
        self.index_complete = False  # embeddings of a file update wait for a complete index (as in the server)
        self.last_report: dict[str, Any] = {}
        self.opened = threading.Event()
        self.watching = False
        self.writer = IndexWriter(self._apply_updates, self._failed, name="sg-mcp-writer")
        self._watch_wanted = watch
        self._files: FileWatch | None = None
        self._runs = 0  # completed index runs: reindex waits for the next one
        self._running = False
        self._runs_cond = threading.Condition()

    # -- life cycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the index, warm the models and index in the background; return at once."""
        self.writer.submit("open", self._open)
        self.writer.submit("index", self._index)
        self.writer.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop writing (an index in progress stops after its current batch) and close the index. A writer still
        busy after `timeout` is left to die with the process: every write is one SQLite transaction."""
        self.writer.stop(timeout=timeout)
        if self._files is not None:
            try:
                self._files.stop()
            except Exception:
                logger.exception("stopping the file watch failed")
        if self.engine is not None and not self.writer.is_alive():
            self.engine.close()

    def use(self) -> Engine:
        """The engine, once open (waits a little for it at start)."""
        self.opened.wait(OPEN_WAIT)
        if self.engine is None:
            raise NotReady(self.refuse or f"the index of {self.root} " + (
                f"cannot be opened: {self.error}" if self.error else "is still opening"))
        return self.engine

    @property
    def indexing(self) -> bool:
        return self.state in ("opening", "indexing")

    # -- on the writer thread ------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.refuse:
            self.state, self.error = "error", self.refuse
            self.opened.set()
            return
        try:
            self.engine = Engine(self.root, self.settings, log=lambda msg: logger.info("%s", msg))
        except Exception as exc:
            logger.exception("cannot open the index of %s", self.root)
            self.state, self.error = "error", str(exc)
            self.opened.set()
            return
        self.opened.set()
        if self.engine.model_state()[0] == "not loaded":  # searches answer lexically, with a note, meanwhile
            threading.Thread(target=self.engine.load_models, kwargs={"warm": True}, daemon=True,
                             name="sg-mcp-models").start()
        if self._watch_wanted:
            self._start_watch(self.engine)

    def _start_watch(self, eng: Engine) -> None:
        try:
            self._files = FileWatch()
            self._files.add("root", self.root, lambda changes: self.writer.note_changes("root", changes,
                                                                                         WATCH_DEBOUNCE),
                            ignored=lambda rel: never_indexed(rel, self.root, eng.index_dir.resolve()))
            self._files.start()
            self.watching = True
        except Exception as exc:  # e.g. the inotify watch limit: the index stays as it is until reindex
            logger.warning("cannot watch files (%s); call reindex after changes", exc)
            self._files = None

    def _index(self) -> None:
        """Lexical pass first (searchable at once), then the models, then embeddings; a file change pre-empts it
        (applied, then the index resumes where it stopped)."""
        eng = self.engine
        if eng is None:
            return
        self.state, self._running = "indexing", True
        want_models = self.settings.models.enabled
        stage = "lexical" if want_models and eng.model_state()[0] not in ("ready", "failed") else "full"
        report = IndexReport()
        try:
            while True:
                ev = threading.Event()
                if self.writer.stopping:
                    ev.set()
                self.writer.preempt = ev
                try:
                    if stage == "models":  # the warm-up started when the index opened: wait for it, pre-emptibly
                        while eng.model_state()[0] in ("not loaded", "loading") and not ev.wait(0.1):
                            pass
                        if not ev.is_set():
                            stage = "full"
                            continue
                        report = IndexReport(cancelled=True)
                    else:
                        report = eng.index(cancel=ev, embed=want_models and eng.model_state()[0] == "ready")
                finally:
                    self.writer.preempt = None
                if report.cancelled:
                    if self.writer.stopping:
                        return
                    self.writer.flush_due_updates()
                    continue
                if stage == "lexical" and want_models:
                    stage = "models"
                    continue
                break
            eng.warm(wait=True)  # the BM25 postings in memory before the state says ready
            self.index_complete = True
            for note in report.notes:
                logger.info("%s", note)
        except Exception as exc:
            logger.exception("indexing %s failed", self.root)
            self.error = f"indexing failed: {exc}"
        finally:
            self.last_report = asdict(report)
            if self.state == "indexing":
                self.state = "ready"
            with self._runs_cond:
                self._runs, self._running = self._runs + 1, False
                self._runs_cond.notify_all()

    def _apply_updates(self, batch: dict[Any, dict[str, str]]) -> None:
        eng = self.engine
        if eng is None:
            return  # not open: the first index reads these files anyway
        for changes in batch.values():
            paths = sorted(changes)
            deleted = [p for p, k in changes.items() if k == "deleted"]
            if len(paths) > RESCAN_THRESHOLD or "dir" in changes.values() or (deleted and eng.needs_rescan(deleted)):
                self.writer.submit("index", self._index, front=True)
                continue
            t0 = time.perf_counter()
            report = eng.update_files(paths, embed=self.index_complete and eng.model_state()[0] == "ready")
            logger.info("re-indexed %d path(s) in %.0f ms (changed %d, removed %d, embedded %d)", len(paths),
                        (time.perf_counter() - t0) * 1000, report.changed, report.removed, report.embedded)

    def _failed(self, exc: Exception) -> None:
        logger.exception("index work failed")
        self.error = str(exc)

    # -- for the tools -------------------------------------------------------------------------------------------
    def reindex(self, timeout: float) -> bool:
        """Queue an incremental index of the whole workspace (first in line) and wait up to `timeout` seconds for
        it; True when it finished."""
        self.use()
        with self._runs_cond:
            target = self._runs + 1 + self._running  # a run in progress may have missed a change
        self.writer.submit("index", self._index, front=True)
        with self._runs_cond:
            return self._runs_cond.wait_for(lambda: self._runs >= target, timeout) if timeout > 0 else False
