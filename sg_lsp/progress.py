"""Server-initiated `$/progress`: one token per long task, throttled reports, cancellable by the client."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from lsprotocol import types

from .session import Session

logger = logging.getLogger("sg_lsp")


class WorkProgress:
    """One server-initiated `$/progress` token: create, begin, throttled reports, end; cancellable by the client.

    Methods block on the client's answer to window/workDoneProgress/create, so use them from worker threads only.
    """

    def __init__(self, session: Session, title: str, on_cancel: Callable[[], None] | None = None):
        self.session = session
        self.progress = session.lsp.work_done_progress
        self.title = title
        self.token = f"sg-{uuid.uuid4().hex[:12]}"
        self.enabled = session.supports_progress()
        self._pct = 0
        self._last = 0.0
        self._ended = False
        if self.enabled:
            try:
                self.progress.create(self.token).result(timeout=10)
            except Exception as exc:  # the client refused or did not answer: no progress for this task
                logger.info("work done progress not created: %s", exc)
                self.enabled = False
        if self.enabled and on_cancel is not None:
            session.progress_cancellers[self.token] = on_cancel

    def begin(self, message: str = "") -> None:
        if self.enabled:
            self.progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, cancellable=self.token in self.session.progress_cancellers, message=message,
                percentage=0))

    def report(self, message: str, pct: float | None = None, force: bool = False) -> None:
        if not self.enabled or self._ended:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        if pct is not None:
            self._pct = max(self._pct, min(100, int(pct)))  # percentages never go backwards
        self.progress.report(self.token, types.WorkDoneProgressReport(
            message=message, percentage=self._pct))

    def end(self, message: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.session.progress_cancellers.pop(self.token, None)
        if self.enabled:
            self.progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.progress.tokens.pop(self.token, None)
