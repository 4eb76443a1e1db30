"""sg/status (what is indexed, models, jobs) and sg/reindex."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import __version__, indexing
from ..protocol import FolderStatus, ReindexParams, StatusParams, StatusResult
from ..session import Folder, Session

STATUS = "sg/status"
REINDEX = "sg/reindex"


def folder_status(f: Folder) -> tuple[FolderStatus, dict[str, Any]]:
    """One folder's entry, and its engine's status (empty while the index is not open)."""
    if f.engine is None:
        return FolderStatus(uri=f.uri, name=f.name, state=f.state, error=f.error, models_loaded=False,
                            complete=f.index_complete, last_index=f.last_report), {}
    try:  # held through use(): a settings change may retire and close this engine meanwhile
        with f.use(wait=0) as eng:
            st = eng.status()
    except Exception as exc:
        st = {"error": str(exc)}
    state = st.get("model_state")  # disabled | not loaded | loading | ready | failed
    return FolderStatus(
        uri=f.uri, name=f.name, state=f.state, error=f.error, models_loaded=state == "ready",
        complete=f.index_complete, last_index=f.last_report, files=st.get("files"), chunks=st.get("chunks"),
        skipped=st.get("skipped"), vectors=st.get("vectors"), models=st.get("models"), index=st.get("index"),
        model_state=state, model_error=st.get("model_note") if state == "failed" else None), st


async def sg_status(session: Session, params: StatusParams) -> StatusResult:
    def run(cancel: threading.Event) -> StatusResult:
        folders = []
        totals = {"files": 0, "chunks": 0, "skipped": 0}
        models: dict[str, str] = {}
        for f in list(session.folders.values()):
            entry, st = folder_status(f)
            for k in totals:
                totals[k] += int(st.get(k) or 0)
            models.update(st.get("models") or {})
            folders.append(entry)
        busy = any(f.state in ("opening", "indexing") for f in session.folders.values())
        return StatusResult(state="indexing" if busy else "ready", **totals, models=models,
                            jobs=[j.status() for j in session.jobs.values()], folders=folders,
                            position_encoding=session.encoding, version=__version__)

    return await session.offload(STATUS, run)


async def sg_reindex(session: Session, params: ReindexParams) -> None:
    for folder in session.folders.values():
        indexing.schedule_index(session, folder)


FEATURES: dict[str, Callable[..., Any]] = {STATUS: sg_status, REINDEX: sg_reindex}
