"""Background indexing over the session: the one writer thread (queued index work, debounced file updates), file
watching, indexing a folder with `$/progress` (lexical pass, then models, then embeddings), and the settings
changes that re-open a folder."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from engine import Engine, FileWatch, IndexReport, IndexWriter

from .progress import WorkProgress
from .session import Folder, Session, jsonable

logger = logging.getLogger("sg_lsp")

SAVE_DEBOUNCE = 0.05  # seconds; a save must be searchable within ~1 s
WATCH_DEBOUNCE = 0.3  # external changes come in bursts (git checkout, code generators)
CHANGE_DEBOUNCE = 1.0  # unsaved edits: while typing, the buffer is re-indexed at most once a second
RESCAN_THRESHOLD = 500  # more changed paths than this: one incremental walk instead of per-file updates
_DEBUG_INDEX_DELAY = float(os.environ.get("SG_LSP_DEBUG_INDEX_DELAY", "0") or 0)  # same, before indexing


class Writer(IndexWriter):
    """The one thread that writes indexes (engine.watch.IndexWriter): queued tasks (open/index/reopen) and debounced
    file updates per folder, applied here (buffers, rescans, errors shown to the user)."""

    def __init__(self, session: Session):
        super().__init__(self._apply_updates, self._failed)
        self.session = session

    def _failed(self, exc: Exception) -> None:
        logger.exception("index work failed")
        self.session.tell_user(types.MessageType.Error, f"sg: indexing failed: {exc}")

    def _apply_updates(self, batch: dict[Folder, dict[str, str]]) -> None:
        for folder, changes in batch.items():
            if folder.engine is None or folder not in self.session.folders.values():
                continue  # not open yet: the initial index will read these files anyway
            eng = folder.engine
            paths = sorted(changes)
            rescan = len(paths) > RESCAN_THRESHOLD or "dir" in changes.values()
            deleted = [p for p, k in changes.items() if k == "deleted"]
            if rescan or (deleted and eng.needs_rescan(deleted)):
                schedule_index(self.session, folder, front=True)
                continue
            embed = folder.index_complete and eng.model_state()[0] == "ready"
            buffers = {}
            for rel in (p for p, k in changes.items() if k == "buffer"):  # unsaved edits: the open document's text
                text = self.session.open_text(self.session.unsaved.get((folder.uri, rel), ""))
                if text is not None:
                    buffers[rel] = text
            t0 = time.perf_counter()
            try:
                report = eng.update_files(paths, embed=embed, buffers=buffers)
            except Exception as exc:
                logger.exception("update_files failed")
                self.session.tell_user(types.MessageType.Error, f"sg: could not re-index {paths[0]}: {exc}")
                continue
            logger.info("re-indexed %d path(s) in %s in %.0f ms (changed %d, removed %d, embedded %d)",
                        len(paths), folder.name, (time.perf_counter() - t0) * 1000, report.changed,
                        report.removed, report.embedded)


# -- queueing index work ---------------------------------------------------------------------------------------------
def start(session: Session) -> None:
    """On `initialized`: start the writer, tell what was queued during initialize, index every folder."""
    if not session.writer.is_alive():
        session.writer.start()
    session.flush_startup_messages()
    if not session.folders:
        session.tell_user(types.MessageType.Info, "sg: no workspace folder is open; nothing to index")
    for folder in session.folders.values():
        schedule_index(session, folder)


def schedule_index(session: Session, folder: Folder, front: bool = False) -> None:
    """Queue a walk of `folder` on the writer (once: an index already queued is not queued twice)."""
    session.writer.submit(f"index:{folder.uri}", lambda: index_folder(session, folder), front=front)


def apply_settings(session: Session) -> None:
    """New overrides: search-only changes apply at once; model/index changes re-open and re-index."""
    for folder in list(session.folders.values()):
        new = session.resolve_settings(folder.root, folder.name)
        if new == folder.settings:
            continue
        folder.settings = new  # what the next Engine of this folder opens with
        eng = folder.engine
        if eng is not None and eng.configure(new):
            continue  # search settings: the engine applied them
        folder.cancel_index(supersede=True)  # a running index of the old settings stops after its batch
        session.writer.submit(f"reopen:{folder.uri}", lambda f=folder: reopen(session, f), front=True)


def use_tuned(session: Session, folder: Folder, model_dir: str) -> None:
    """Serve `folder` with a model made by sg/tune: its settings change, so the folder re-opens and re-embeds."""
    session.tuned[folder.root] = model_dir
    apply_settings(session)


# -- file watching (fallback when the client cannot watch files for us) --------------------------------------------
def watch_folder(session: Session, folder: Folder) -> None:
    """Our own watcher's events in `folder` become debounced writer updates (no-op when the client watches)."""
    if session.watch is not None:
        session.watch.add(folder.uri, folder.root,
                          lambda changes: session.writer.note_changes(folder, changes, WATCH_DEBOUNCE),
                          rel=folder.rel, ignored=folder.ignored)


# -- indexing a folder (on the writer thread) ------------------------------------------------------------------------
def open_engine(session: Session, folder: Folder) -> bool:
    try:
        engine = Engine(folder.root, folder.settings, log=session.log_to_client)
    except Exception as exc:
        logger.exception("cannot open the index of %s", folder.root)
        folder.state, folder.error = "error", f"cannot open the index: {exc}"
        session.tell_user(types.MessageType.Error, f"sg: {folder.name}: {folder.error}")
        folder.opened.set()
        return False
    folder.swap(engine)
    folder.error = ""
    folder.opened.set()
    start_warmup(session, folder, engine)
    return True


def start_warmup(session: Session, folder: Folder, eng: Engine) -> None:
    """Load the folder's models in the background as soon as it opens, so the first semantic query does not pay
    for the load (searches answer lexically, saying so, until they are ready). The index waits for them only
    where it needs them, after its lexical pass, as it did when it loaded them itself."""
    if eng.model_state()[0] == "not loaded":
        threading.Thread(target=warm_models, args=(session, folder, eng), daemon=True,
                         name=f"sg-models-{folder.name}").start()


def warm_models(session: Session, folder: Folder, eng: Engine) -> None:
    """Load the models (Engine.load_models never raises for a model that cannot load) and tell the user what
    came of it: lexical search only when they failed, and any per-route note (a fallback model, say)."""
    try:
        with folder.use(wait=0) as current:  # a user of the engine: a re-open cannot close it while it loads
            if current is not eng:
                return  # re-opened meanwhile: the new engine warms its own models
            state, why = eng.load_models(warm=True)  # the first query then waits for nothing
    except JsonRpcException:
        return  # the folder closed
    if folder.engine is not eng:
        return
    if state == "failed":
        session.tell_user(types.MessageType.Error, f"sg ({folder.name}): no embedding model: {why}; "
                                              "searching lexically only")
    elif state == "ready":
        for r in eng.models():
            if r.note:
                session.tell_user(types.MessageType.Warning, f"sg ({folder.name}): {r.route}: {r.note}", every=3600)


def index_folder(session: Session, folder: Folder) -> None:
    """Open (if needed) and index one folder, with $/progress; lexical pass, then models, then embeddings."""
    if folder not in session.folders.values():
        return
    folder.cancel_requested = folder.superseded = False  # before the token exists: a cancel may follow at once
    prog = WorkProgress(session, f"sg: indexing {folder.name}",
                        on_cancel=lambda: folder.cancel_index(by_user=True))
    prog.begin("opening the index")
    if folder.engine is None and not open_engine(session, folder):
        prog.end(f"failed: {folder.error}")
        return
    eng = folder.engine
    folder.state = "indexing"
    want_models = folder.settings.models.enabled
    stage = "lexical" if want_models and eng.model_state()[0] not in ("ready", "failed") else "full"
    t0 = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        # Percent bands: files 0-40, models 40-45, embeddings 45-100 (files 0-100 without models).
        if not want_models:
            lo, hi = 0, 100
        elif phase.startswith("embed"):
            lo, hi = 45, 100
        else:
            lo, hi = (0, 40) if stage == "lexical" else (40, 45)
        if phase == "files":
            msg = f"files {done}/{total}" if total else "checking files"
        else:
            msg = f"embedding {done}/{total} chunks ({phase.split(':', 1)[-1]})"
        prog.report(msg, lo + (hi - lo) * (done / total if total else 1.0), force=done == total)

    report = None
    while True:
        ev = threading.Event()
        folder.index_cancel = ev
        if folder.cancel_requested or folder.superseded or session.writer.stopping:
            ev.set()
        session.writer.preempt = ev
        try:
            if stage == "models":
                prog.report("loading embedding models", 42, force=True)
                eng.load_models()  # waits for the warm-up started when the folder opened
                stage = "full"
                continue
            embed = want_models and eng.model_state()[0] == "ready"
            if _DEBUG_INDEX_DELAY and report is None and ev.wait(_DEBUG_INDEX_DELAY):
                report = IndexReport(cancelled=True)
            else:
                report = eng.index(progress=progress, cancel=ev, embed=embed)
        except Exception as exc:
            logger.exception("indexing %s failed", folder.root)
            folder.state, folder.error = "ready", f"indexing failed: {exc}"
            session.tell_user(types.MessageType.Error, f"sg: {folder.name}: {folder.error}")
            prog.end(f"failed: {exc}")
            return
        finally:
            session.writer.preempt = None
            folder.index_cancel = None
        folder.last_report = jsonable(report)
        if report.cancelled:
            if folder.cancel_requested or folder.superseded or session.writer.stopping:
                folder.state = "ready"
                folder.index_complete = False  # saves stay lexical-only until an index completes
                prog.end("cancelled: searching what is indexed so far")
                return
            session.writer.flush_due_updates()  # pre-empted by a save: apply it, then resume
            continue
        for note in report.notes:
            session.log_to_client(f"sg ({folder.name}): {note}")
        if stage == "lexical" and want_models:
            stage = "models"
            continue
        break
    # Ready means warm: the BM25 postings are in memory before the status says so (0.3 s at 6K chunks, 8.5 s at
    # 100K; searches meanwhile rank with FTS5), so the first search after "ready" does not compete with reading them.
    eng.warm(wait=True)
    folder.index_complete = True
    folder.state = "ready"
    # The walk read every file from disk: documents with unsaved edits get their text back.
    edited = {rel: "buffer" for furi, rel in list(session.unsaved) if furi == folder.uri}
    if edited:
        session.writer.note_changes(folder, edited, SAVE_DEBOUNCE)
    st = eng.status()
    prog.end(f"{st.get('files', 0)} files, {st.get('chunks', 0)} chunks, {st.get('skipped', 0)} skipped "
             f"in {time.perf_counter() - t0:.1f} s")


def reopen(session: Session, folder: Folder) -> None:
    """Swap in an Engine built with the folder's current settings (the old one serves until then)."""
    folder.index_complete = False
    folder.state = "opening"
    if open_engine(session, folder):
        index_folder(session, folder)


def setup_watching(session: Session) -> None:
    """Ask the client to watch files (dynamic registration) or fall back to a watchdog observer."""
    caps = session.lsp.client_capabilities.workspace
    dyn = bool(caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration)
    if dyn:
        reg = types.Registration(
            id=f"sg-watch-{uuid.uuid4().hex[:8]}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern="**/*")]))
        try:
            session.lsp.client_register_capability(types.RegistrationParams(registrations=[reg])).result(timeout=10)
            logger.info("the client watches files for us")
            return
        except Exception as exc:
            logger.info("client/registerCapability failed (%s): using a watchdog observer", exc)
    start_watchdog(session)


def start_watchdog(session: Session) -> None:
    try:
        session.watch = FileWatch()
        for folder in session.folders.values():
            watch_folder(session, folder)
        session.watch.start()
    except Exception as exc:
        session.watch = None
        session.tell_user(types.MessageType.Warning, f"sg: cannot watch files ({exc}); changes made outside the "
                                                       "editor are picked up on the next start")

