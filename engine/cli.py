"""`sg` command line: index, search, similar, status, models, eval, tune. Calls the same Engine API as the server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine import BACKENDS, Settings, SgError, load_settings


def _overrides(args: argparse.Namespace) -> dict:
    models: dict = {}
    index: dict = {}
    if getattr(args, "model_path", None):
        models["model_path"] = str(Path(args.model_path).expanduser().resolve())
    if getattr(args, "trust_remote_code", False):
        models["trust_remote_code"] = True
    if getattr(args, "no_models", False):
        models["enabled"] = False
    if getattr(args, "index_dir", None):
        index["index_dir"] = str(Path(args.index_dir).expanduser().resolve())
    out = {}
    if getattr(args, "backend", None):  # the Qdrant backend (docs/qdrant.md)
        index["backend"] = args.backend
    if getattr(args, "qdrant_url", None):
        url = args.qdrant_url
        out["qdrant"] = {"url": url if "://" in url else str(Path(url).expanduser().resolve())}
    if models:
        out["models"] = models
    if index:
        out["index"] = index
    return out


def _settings(args: argparse.Namespace, root: Path | None) -> Settings:
    problems: list[str] = []
    settings = load_settings(root, _overrides(args), problems, lenient=True)
    for p in problems:
        _err(f"warning: {p}")
    return settings


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


@contextmanager
def _progress(enabled: bool) -> Iterator:
    """A rich progress bar with one task per phase; yields the engine's progress callback."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    tasks: dict[str, TaskID] = {}
    with Progress(TextColumn("{task.description:>22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False, console=_stderr_console()) as bar:
        def cb(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=max(total, 1))
            bar.update(tasks[phase], completed=done if total else 1, total=max(total, 1))

        yield cb


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _open_engine(args: argparse.Namespace, root: Path):
    from engine import Engine

    notes_seen: set[str] = set()

    def log(msg: str) -> None:
        if msg not in notes_seen:  # stderr, so --json output on stdout stays clean
            notes_seen.add(msg)
            _err(f"sg: {msg}")

    return Engine(root, _settings(args, root), log=log)


def _show_progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "json", False) and not getattr(args, "quiet", False) and sys.stderr.isatty() or \
        bool(os.environ.get("SG_PROGRESS"))


def cmd_index(args: argparse.Namespace) -> int:
    root = Path(args.path)
    engine = _open_engine(args, root)
    if args.background:  # started by `sg search` (_embed_in_background): one at a time per index
        lock = _embed_lock(Path(engine.index_dir), hold=True)
        if lock is None:
            engine.close()
            return 0
        args.quiet = True
    cancel = threading.Event()
    try:
        with _progress(_show_progress(args)) as cb:
            rep = engine.index(progress=cb, cancel=cancel, embed=not args.no_embed)
    except KeyboardInterrupt:
        cancel.set()
        _err("sg: interrupted; what was indexed so far is kept")
        return 130
    finally:
        engine.close()
    data = {"files": rep.files, "changed": rep.changed, "removed": rep.removed, "skipped": rep.skipped,
            "chunks": rep.chunks, "embedded": rep.embedded, "seconds": round(rep.seconds, 3)}
    if args.json:
        print(json.dumps(data))
    else:
        print(f"indexed {rep.files} files ({rep.changed} changed, {rep.removed} removed, {rep.skipped} skipped), "
              f"{rep.chunks} chunks, {rep.embedded} embedded, in {rep.seconds:.2f}s")
        if rep.skipped:
            print("  see skipped files with: sg status --skipped")
    return 0


def _hit_dict(h, explain: bool) -> dict:
    d = {"path": h.path, "line": h.start_line, "end_line": h.end_line, "symbol": h.symbol, "kind": h.kind,
         "language": h.language, "score": round(h.score, 5), "space": h.space, "snippet": h.snippet}
    if explain:
        d["explanation"] = {k: round(v, 5) for k, v in h.components.items()}
    return d


def _print_hits(res, explain: bool) -> None:
    """Hits for a person: rich on a terminal; off one (a pipe, a file) plain lines that never wrap, one line per
    hit (`path:line  symbol  score`) with its snippet indented under it, so grep and head never cut a hit in two.
    Notes and the summary go to stderr off a terminal."""
    for note in res.notes:
        _err(f"sg: {note}")
    if not sys.stdout.isatty():
        _print_plain(res, explain)
        return
    from rich.console import Console
    from rich.markup import escape

    con = Console(highlight=False)
    if explain:
        from engine import explain_route

        con.print(f"[dim]route: {escape(explain_route(res.route))}; models: "
                  f"{escape(', '.join(f'{k}={v}' for k, v in res.models.items()))}[/dim]")
    if not res.hits:
        con.print("no results")
    for h in res.hits:
        con.print(f"[bold cyan]{escape(h.path)}[/]:[yellow]{h.start_line}[/]  [bold]{escape(h.symbol or h.kind)}[/]"
                  f"  [dim]{h.score:.3f}[/dim]")
        if explain:
            con.print("    [dim]" + escape("  ".join(f"{k}={v:.3f}" for k, v in h.components.items())) + "[/dim]")
        for line in h.snippet.splitlines()[:3]:
            con.print("    " + escape(line[:160]))
    con.print(f"[dim]{len(res.hits)} results in {res.elapsed_ms:.0f} ms ({res.mode})[/dim]")


def _print_plain(res, explain: bool) -> None:
    out = []
    if explain:
        from engine import explain_route

        out.append(f"route: {explain_route(res.route)}; models: "
                   f"{', '.join(f'{k}={v}' for k, v in res.models.items())}")
    for h in res.hits:
        out.append(f"{h.path}:{h.start_line}  {h.symbol or h.kind}  {h.score:.3f}")
        if explain:
            out.append("    " + "  ".join(f"{k}={v:.3f}" for k, v in h.components.items()))
        out.extend("    " + line for line in h.snippet.splitlines()[:3])
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    _err(f"sg: {len(res.hits)} results in {res.elapsed_ms:.0f} ms ({res.mode})" if res.hits else "sg: no results")


INLINE_EMBED = 64  # at most this many chunks without vectors are embedded before answering; more: in the background


def cmd_search(args: argparse.Namespace) -> int:
    """Bring the index up to date and search. A folder whose embeddings are far behind (never indexed, or a big
    change) is answered at once from the lexical tier with the full ranking, while a detached `sg index` embeds
    the rest; later searches are hybrid. --wait embeds first, for scripts that want the full answer."""
    root = Path(args.root)
    engine = _open_engine(args, root)
    pending = 0
    mode = args.mode
    try:
        if not args.no_update:
            with _progress(_show_progress(args)) as cb:
                engine.index(progress=cb, embed=False)
                if mode != "lexical":
                    pending = engine.pending_embeddings()
                    if pending and (args.wait or pending <= INLINE_EMBED):
                        engine.index(progress=cb)
                        pending = 0
        if pending:
            mode = "lexical"
        res = engine.search(args.query, k=args.k, mode=mode, paths=args.path or None, explain=args.explain)
    finally:
        engine.close()
    if pending:
        if args.no_background:
            how = "`sg index` embeds them"
        elif _embed_in_background(args, Path(engine.index_dir)):
            how = "they are being embedded in the background, and later searches are hybrid"
        else:
            how = "another sg process is embedding them, and later searches are hybrid"
        res.notes.append(f"{pending} chunks have no embeddings yet: lexical tier only (full ranking); {how} "
                         "(--wait waits for them)")
    if args.json:
        print(json.dumps({"query": args.query, "mode": res.mode, "tiers": res.tiers,
                          "elapsedMs": round(res.elapsed_ms, 2), "models": res.models, "notes": res.notes,
                          "results": [_hit_dict(h, args.explain) for h in res.hits]}, ensure_ascii=False))
    else:
        _print_hits(res, args.explain)
        for note in res.notes:
            _err(f"sg: {note}")
    return 0


def _embed_in_background(args: argparse.Namespace, index_dir: Path) -> bool:
    """Start a detached `sg index` over the same folder and settings unless one already runs (it holds
    <index>/embed.lock). Its output goes to <index>/embed.log. False when one was already running."""
    if _embed_lock(index_dir) is None:
        return False  # held: released at once below only when we got it
    cmd = [sys.executable, "-m", "engine.cli", "index", str(Path(args.root).resolve()), "--background"]
    for flag in ("index_dir", "model_path", "backend", "qdrant_url"):
        value = getattr(args, flag, None)
        if value:
            local = flag in ("index_dir", "model_path") or (flag == "qdrant_url" and "://" not in value)
            cmd += [f"--{flag.replace('_', '-')}", str(Path(value).expanduser().resolve()) if local else value]
    if getattr(args, "trust_remote_code", False):
        cmd.append("--trust-remote-code")
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / "embed.log", "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    return True


def _embed_lock(index_dir: Path, hold: bool = False):
    """The background indexer's lock: an open file holding an exclusive flock (kept when `hold`, else released
    at once), or None when another process holds it."""
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    f = open(index_dir / "embed.lock", "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    if not hold:
        f.close()  # closing releases it
    return f


def cmd_similar(args: argparse.Namespace) -> int:
    target, _, line = args.location.rpartition(":")
    if not target or not line.isdigit():
        raise SgError(f"expected FILE:LINE, got {args.location!r}")
    root = Path(args.root).resolve()
    engine = _open_engine(args, root)
    try:
        if not args.no_update:
            engine.index()
        path = Path(target)
        rel = (path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve())
        try:
            rel_s = rel.relative_to(root).as_posix()
        except ValueError:
            raise SgError(f"{target} is not inside the workspace {root}") from None
        res = engine.similar(rel_s, int(line), k=args.k, mode=args.mode)
    finally:
        engine.close()
    if args.json:
        print(json.dumps({"results": [_hit_dict(h, args.explain) for h in res.hits],
                          "elapsedMs": round(res.elapsed_ms, 2)}, ensure_ascii=False))
    else:
        _print_hits(res, args.explain)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.path)
    engine = _open_engine(args, root)
    try:
        st = engine.status()
        skipped = engine.skipped()
    finally:
        engine.close()
    if args.json:
        if args.skipped:
            st["skipped_files"] = [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in skipped]
        print(json.dumps(st))
        return 0
    print(f"{st['root']}: {st['files']} files, {st['chunks']} chunks, {st['skipped']} skipped  (index: {st['index']})")
    if args.skipped:
        for s in skipped:
            print(f"  {s.reason:16} {s.path}" + (f"  ({s.detail})" if s.detail else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    root = Path(args.path)
    engine = _open_engine(args, root)
    try:
        reports = engine.models()
    finally:
        engine.close()
    if args.json:
        print(json.dumps([r.__dict__ for r in reports]))
        return 0
    for r in reports:
        print(f"{r.route:6} {r.model or 'lexical only':40} {r.kind:8} dim={r.dim:<5} {r.source}")
        if r.note:
            print(f"       {r.note}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engine import run_eval

    settings = _settings(args, None)
    with _progress(_show_progress(args)) as cb:
        res = run_eval(args.spec, mode=args.mode, settings=settings, index_dir=args.index_dir, progress=cb,
                       keep_misses=bool(args.misses or args.explain))
    if args.json:
        out = res.as_dict()
        if args.misses or args.explain:
            out["misses"] = res.misses[: args.misses or None]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"{res.name} [{res.mode}] n={res.n}  P@1 {res.p_at_1:.4f}  MRR@10 {res.mrr_at_10:.4f}  "
          f"R@10 {res.r_at_10:.4f}  ({res.seconds:.1f}s for queries)")
    for m in res.misses[: args.misses or (10 if args.explain else 0)]:
        print(f"  miss {m['id']} rank={m['rank']}: {m['query'][:100]!r}")
        print(f"       relevant: {', '.join(m['relevant'][:3])}")
        for t in m["top"]:
            print(f"       got {t['path']}::{t['symbol']} {t['score']}"
                  + (f"  {t['components']}" if args.explain else ""))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    try:
        from engine import run_tune
    except ImportError as exc:
        raise SgError(f"local tuning is not available in this build ({exc})") from None
    root = Path(args.path)
    engine = _open_engine(args, root)
    cancel = threading.Event()
    try:
        with _progress(_show_progress(args)) as cb:
            rep = run_tune(engine, config_path=args.config, out_dir=args.out, progress=cb, cancel=cancel,
                           dry_run=args.dry_run, eval_only=args.eval)
    except KeyboardInterrupt:
        cancel.set()
        _err("sg: tuning interrupted")
        return 130
    finally:
        engine.close()
    data = rep.__dict__ if hasattr(rep, "__dict__") else rep
    print(json.dumps(data, default=str, indent=None if args.json else 2))
    return 0


def _common(p: argparse.ArgumentParser, models: bool = True) -> None:
    p.add_argument("--index-dir", help="where the index lives (default: <workspace>/.sg)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    if models:
        p.add_argument("--model-path", help="a local model directory (e.g. one made by `sg tune`)")
        p.add_argument("--trust-remote-code", action="store_true",
                       help="allow models that run their own code (Jina); only for models you trust")
        p.add_argument("--no-models", action="store_true", help="lexical search only")
    p.add_argument("--backend", choices=tuple(BACKENDS), help="index backend (default: index.backend, local)")
    p.add_argument("--qdrant-url", metavar="URL|DIR", help="Qdrant server/cluster URL, or a directory for the "
                   "embedded engine (with --backend qdrant)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return value


def build_parser(extra: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The built-in subcommands, plus `extra` (name -> entry point) listed for --help only: main() runs those."""
    ap = argparse.ArgumentParser(prog="sg", description="Semantic code search, offline.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("index", help="index a folder (incremental)")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--no-embed", action="store_true", help="lexical index only (fast); embed later")
    p.add_argument("--background", action="store_true", help=argparse.SUPPRESS)  # sg search's detached indexer
    _common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search a folder (updates its index first)")
    p.add_argument("query")
    p.add_argument("root", nargs="?", default=".", help="workspace folder (default: .)")
    p.add_argument("-k", type=_positive, default=10, help="number of results")
    p.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default=None)
    p.add_argument("--path", action="append", help="only results under this glob (repeatable)")
    p.add_argument("--explain", action="store_true", help="show the route, models and score components")
    p.add_argument("--no-update", action="store_true", help="search the index as it is")
    p.add_argument("--wait", action="store_true",
                   help="embed everything first (default: answer lexically at once while a large backlog embeds "
                        "in the background)")
    p.add_argument("--no-background", action="store_true",
                   help="with a large backlog, answer lexically and start no background indexer")
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("similar", help="functions similar to the one at FILE:LINE")
    p.add_argument("location", metavar="FILE:LINE")
    p.add_argument("--root", default=".", help="workspace folder (default: .)")
    p.add_argument("-k", type=_positive, default=10)
    p.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default=None)
    p.add_argument("--explain", action="store_true")
    p.add_argument("--no-update", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("status", help="what is indexed and what was skipped")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--skipped", action="store_true", help="list skipped files with their reasons")
    _common(p, models=False)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("models", help="which model serves each embedding space")
    p.add_argument("path", nargs="?", default=".")
    _common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("eval", help="measure P@1, MRR@10, R@10 on an eval spec")
    p.add_argument("--spec", required=True, help="eval-spec JSON file")
    p.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default="hybrid")
    p.add_argument("--misses", type=int, default=0, help="list up to N queries whose answer was not first")
    p.add_argument("--explain", action="store_true", help="with misses: show score components")
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("tune", help="tune the embedding model on this workspace (LoRA)")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--config", help="training config YAML (default: configs/train_local_default.yaml)")
    p.add_argument("--out", help="output directory for the tuned model")
    p.add_argument("--dry-run", action="store_true", help="mine pairs and stop")
    p.add_argument("--eval", action="store_true", help="report P@1/MRR on held-out mined pairs before and after")
    _common(p)
    p.set_defaults(func=cmd_tune)
    for name, target in (extra or {}).items():
        sub.add_parser(name, add_help=False, help=f"`sg {name} --help` ({target.split(':')[0]})")
    return ap


BUILTIN = ("index", "search", "similar", "status", "models", "eval", "tune")
COMMANDS_GROUP = "sg.commands"  # entry points of other packages' subcommands: `sg mcp` is sg_mcp's (pyproject.toml)


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP) if ep.name not in BUILTIN}


def _run_external(name: str, argv: list[str]) -> int | None:
    """`sg NAME ...` for a NAME that another installed package registers (engine never imports its adapters);
    None when none does. Only looked up for a name that is not built in, so the built-in commands pay nothing."""
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        command = ep.load()
    except ImportError as exc:
        _err(f"sg: error: `sg {name}` is installed but cannot load ({exc}); reinstall sg")
        return 2
    return command(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["models", "pull"]:  # `sg models pull ID`: the one online step, all in engine/embed/pull.py
        from engine import pull_main
        return pull_main(argv[2:])
    if argv and argv[0] not in BUILTIN and not argv[0].startswith("-"):
        code = _run_external(argv[0], argv[1:])
        if code is not None:
            return code
    wants_help = not argv or argv[0] in ("-h", "--help")
    args = build_parser({n: ep.value for n, ep in _entry_points().items()} if wants_help else None).parse_args(argv)
    folder = getattr(args, "root", None) or getattr(args, "path", None)
    if folder is not None and not Path(folder).is_dir():
        _err(f"sg: error: {folder} is not a directory")
        return 2
    try:
        return args.func(args)
    except SgError as exc:
        _err(f"sg: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("sg: interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
