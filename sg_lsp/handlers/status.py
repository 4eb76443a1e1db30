"""sg/status (what is indexed, models, jobs) and sg/reindex."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..server import SgLanguageServer

STATUS = "sg/status"
REINDEX = "sg/reindex"


async def sg_status(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    def run(cancel: threading.Event) -> dict[str, Any]:
        folders = []
        totals = {"files": 0, "chunks": 0, "skipped": 0}
        models: dict[str, str] = {}
        for f in list(ls.folders.values()):
            entry: dict[str, Any] = {"uri": f.uri, "name": f.name, "state": f.state, "error": f.error,
                                     "modelsLoaded": False, "complete": f.index_complete, "lastIndex": f.last_report}
            if f.engine is not None:
                try:  # held through use(): a settings change may retire and close this engine meanwhile
                    with f.use(wait=0) as eng:
                        st = eng.status()
                except Exception as exc:
                    st = {"error": str(exc)}
                entry.update({k: st.get(k) for k in ("files", "chunks", "skipped", "vectors", "models", "index")})
                entry["modelState"] = st.get("model_state")  # disabled | not loaded | loading | ready | failed
                entry["modelsLoaded"] = st.get("model_state") == "ready"
                if st.get("model_state") == "failed":
                    entry["modelError"] = st.get("model_note")
                for k in totals:
                    totals[k] += int(st.get(k) or 0)
                models.update(st.get("models") or {})
            folders.append(entry)
        busy = any(f.state in ("opening", "indexing") for f in ls.folders.values())
        return {"state": "indexing" if busy else "ready", **totals, "models": models,
                "jobs": [j.to_json() for j in ls.jobs.values()], "folders": folders,
                "positionEncoding": ls.encoding, "version": __version__}

    return await ls.offload("sg/status", run)


async def sg_reindex(ls: SgLanguageServer, params: Any) -> None:
    for folder in ls.folders.values():
        ls.schedule_index(folder)


def register(server: SgLanguageServer) -> None:
    server.feature(STATUS)(sg_status)
    server.feature(REINDEX)(sg_reindex)
