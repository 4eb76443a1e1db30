"""Keeping an index fresh in a long-lived process (the language server, the MCP server): a watchdog observer that
turns file events into workspace-relative changes, and the one writer thread that applies them, debounced."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from pathlib import Path, PurePosixPath
from typing import Any

from .multi import inside

# What a change to a workspace-relative path is: its bytes changed (or it appeared), it went away, or it is a
# folder (created, deleted or moved: only a walk knows what came or went with it).
CHANGED, DELETED, DIR = "changed", "deleted", "dir"
VCS_DIRS = (".git", ".hg", ".svn")

Changes = dict[str, str]  # rel path -> changed | deleted | dir (adapters may add kinds of their own)


class IndexWriter(threading.Thread):
    """The one thread that writes indexes: queued tasks and debounced file changes.

    `apply(batch)` receives the due changes, grouped by the key they were noted under (a workspace folder, say).
    Due changes go first; work that passes `preempt` to Engine.index as its cancel event is pre-empted by a change
    (it stops after the current batch, the caller applies the change with flush_due_updates() and resumes), so a
    save is searchable quickly even during a long index. `on_error(exc)` is called, inside the except block, when a
    task or `apply` raises; the thread goes on.
    """

    def __init__(self, apply: Callable[[dict[Hashable, Changes]], None],
                 on_error: Callable[[Exception], None] | None = None, name: str = "sg-writer"):
        super().__init__(name=name, daemon=True)
        self.apply = apply
        self.on_error = on_error or (lambda exc: None)
        self.cond = threading.Condition()
        self.tasks: deque[tuple[str, Callable[[], None]]] = deque()
        self.pending: dict[Hashable, Changes] = {}  # key -> rel path -> kind
        self.due: float | None = None
        self.stopping = False
        self.preempt: threading.Event | None = None

    def submit(self, key: str, fn: Callable[[], None], front: bool = False) -> None:
        """Queue a task; a task whose non-empty `key` is already queued is not queued twice."""
        with self.cond:
            if key and any(k == key for k, _ in self.tasks):
                return
            (self.tasks.appendleft if front else self.tasks.append)((key, fn))
            self.cond.notify()

    def note_changes(self, key: Hashable, changes: Changes, delay: float) -> None:
        """Record changes to apply `delay` seconds from now (a later, shorter delay brings the batch forward)."""
        with self.cond:
            mine = self.pending.setdefault(key, {})
            for rel, kind in changes.items():
                mine[rel] = DIR if DIR in (kind, mine.get(rel)) else kind
            due = time.monotonic() + delay
            self.due = due if self.due is None else min(max(self.due, time.monotonic()), due)
            if self.preempt is not None:
                self.preempt.set()
            self.cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self.cond:
            self.stopping = True
            self.tasks.clear()
            if self.preempt is not None:
                self.preempt.set()
            self.cond.notify()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        while True:
            with self.cond:
                job = self._next_locked()
            if job is None:
                return
            try:
                job()
            except Exception as exc:
                self.on_error(exc)

    def _next_locked(self) -> Callable[[], None] | None:
        while not self.stopping:
            now = time.monotonic()
            if self.pending and self.due is not None and now >= self.due:
                return self._take_updates_locked()
            if self.tasks:
                return self.tasks.popleft()[1]
            self.cond.wait(None if self.due is None or not self.pending else max(0.0, self.due - now))
        return None

    def _take_updates_locked(self) -> Callable[[], None]:
        batch, self.pending, self.due = self.pending, {}, None
        return lambda: self.apply(batch)

    def flush_due_updates(self) -> None:
        """Called by a pre-empted index: apply the pending changes now (after their debounce)."""
        while True:
            with self.cond:
                if self.stopping or not self.pending:
                    return
                wait = (self.due or 0) - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                job = self._take_updates_locked()
            job()


class FileWatch:
    """One watchdog observer over any number of roots; each event becomes {rel: changed|deleted|dir} for the
    root's callback. Only events that can change an index are asked for (no open/close-without-write noise from
    the indexer's own reads); a folder's own modified events are dropped (each child has its own event)."""

    def __init__(self) -> None:
        from watchdog.observers import Observer  # watchdog only where something is watched

        self.observer = Observer()
        self.observer.daemon = True
        self.watches: dict[Hashable, Any] = {}

    def add(self, key: Hashable, root: Path, on_changes: Callable[[Changes], None],
            rel: Callable[[Path], str | None] | None = None, ignored: Callable[[str], bool] | None = None) -> None:
        """Watch `root` recursively. `rel` maps an absolute path to a workspace-relative one (None: outside; the
        default resolves against `root`); paths for which `ignored(rel)` holds are dropped."""
        from watchdog import events as ev

        to_rel = rel or (lambda p: inside(p, root))
        skip = ignored or (lambda r: False)

        class Handler(ev.FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                kind = event.event_type
                if kind not in ("created", "modified", "deleted", "moved", "closed"):
                    return
                if event.is_directory and kind in ("modified", "closed"):
                    return
                changes: Changes = {}
                paths = [(event.src_path, DELETED if kind in ("deleted", "moved") else CHANGED)]
                if kind == "moved":
                    paths.append((event.dest_path, CHANGED))
                for p, k in paths:
                    r = to_rel(Path(os.fsdecode(p)))
                    if r is None or skip(r):
                        continue
                    changes[r] = DIR if event.is_directory else k
                if changes:
                    on_changes(changes)

        kinds = [ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileDeletedEvent, ev.FileMovedEvent,
                 ev.FileClosedEvent, ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]
        self.watches[key] = self.observer.schedule(Handler(), str(root), recursive=True, event_filter=kinds)

    def remove(self, key: Hashable) -> None:
        w = self.watches.pop(key, None)
        if w is not None:
            self.observer.unschedule(w)

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()


def never_indexed(rel: str, root: Path, index_dir: Path) -> bool:
    """Paths whose changes never concern the index: VCS internals and the index itself (`index_dir`, absolute)."""
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] in VCS_DIRS:
        return True
    return (root / rel).is_relative_to(index_dir)
