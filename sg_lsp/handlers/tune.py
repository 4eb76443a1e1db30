"""sg/tune: local tuning as a background job with progress; switches the folder to the tuned model when asked
(or when it did not get worse on held-out pairs)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .. import indexing
from ..jsonrpc import REQUEST_FAILED
from ..progress import WorkProgress
from ..protocol import TuneParams, TuneResult
from ..session import Folder, Job, Session, jsonable

logger = logging.getLogger("sg_lsp")

TUNE = "sg/tune"


async def sg_tune(session: Session, params: TuneParams) -> TuneResult:
    extra = {"dry_run": True} if params.dry_run else {}  # mine pairs only
    try:
        from engine import run_tune
    except ImportError:
        raise JsonRpcException("local tuning is not available in this build", code=REQUEST_FAILED) from None
    if params.folder is not None:
        folder = session.require_folder(params.folder)[0]
    elif session.folders:
        folder = next(iter(session.folders.values()))
    else:
        raise JsonRpcException("sg/tune: no workspace folder is open", code=REQUEST_FAILED)
    running = [j for j in session.jobs.values() if j.kind == "tune" and j.state == "running"]
    if running:
        raise JsonRpcException(f"a tuning job is already running ({running[0].id})", code=REQUEST_FAILED)
    job = Job(id=f"tune-{next(session.job_ids)}", kind="tune", folder=folder.uri)
    session.jobs[job.id] = job
    threading.Thread(target=_run_tune_job, args=(session, job, folder, run_tune, params.config_path,
                                                 params.out_dir, extra, params.apply),
                     name=f"sg-{job.id}", daemon=True).start()
    return TuneResult(job_id=job.id)


def _apply_tuned(session: Session, folder: Folder, report: Any, apply: bool | None) -> tuple[bool, str]:
    """Switch the folder to the tuned model when asked (apply true), or by default when its held-out MRR@10 did
    not drop: (switched, the sentence to add to the user's message)."""
    where = getattr(report, "out_dir", "")
    if not where or apply is False or getattr(report, "stopped", "") in ("dry-run", "eval-only"):
        return False, ""
    before = (getattr(report, "before", None) or {}).get("MRR@10")
    after = (getattr(report, "after", None) or {}).get("MRR@10")
    measured = f" (held-out MRR@10 {before:.3f} -> {after:.3f})" if before is not None and after is not None else ""
    if apply is None and (before is None or after is None or after < before):
        return False, f"; not switched to it{measured or ' (not measured)'}: set models.model_path to use it"
    indexing.use_tuned(session, folder, where)
    return True, (f"; {folder.name} now searches with it{measured} and is re-indexing. To keep it after a restart "
                  f"set models.model_path = \"{where}\" in .sg.toml")


def _run_tune_job(session: Session, job: Job, folder: Folder, run_tune: Callable[..., Any],
                  config_path: str | None, out_dir: str | None, extra: dict[str, Any], apply: bool | None) -> None:
    prog = WorkProgress(session, f"sg: tuning on {folder.name}", on_cancel=job.cancel.set)
    prog.begin("starting")

    def progress(*args: Any, **kwargs: Any) -> None:
        if len(args) >= 3 and isinstance(args[1], (int, float)) and isinstance(args[2], (int, float)):
            phase, done, total = args[0], args[1], args[2]
            job.message = f"{phase} {done}/{total}"
            prog.report(job.message, 100 * done / total if total else None)
        elif args:
            job.message = " ".join(str(a) for a in args)
            prog.report(job.message)

    try:
        with folder.use(wait=60) as eng:
            report = run_tune(eng, config_path=config_path, out_dir=out_dir, progress=progress, cancel=job.cancel,
                              **extra)
        result = jsonable(report)
        state = "cancelled" if job.cancel.is_set() or getattr(report, "cancelled", False) else "done"
        said = ""
        if state == "done":
            result["applied"], said = _apply_tuned(session, folder, report, apply)
        job.result, job.state = result, state
        where = getattr(report, "out_dir", "")
        job.message = "cancelled" if state == "cancelled" else f"done: {where}" if where else "done"
        prog.end(job.message)
        if state == "done":
            session.tell_user(types.MessageType.Info,
                              f"sg: tuning finished ({job.id}): {where or 'see sg/status'}{said}")
    except Exception as exc:
        logger.exception("tuning failed")
        job.state, job.error = "failed", str(exc) or repr(exc)
        prog.end(f"failed: {job.error}")
        session.tell_user(types.MessageType.Error, f"sg: tuning failed: {job.error}")
    finally:
        job.finished = time.time()


FEATURES: dict[str, Callable[..., Any]] = {TUNE: sg_tune}
