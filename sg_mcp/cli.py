"""`sg mcp [PATH]` (or `sg-mcp`): the MCP server over stdio, serving the workspace it is started in."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__


def build_parser(prog: str = "sg mcp") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="sg's MCP server for coding agents (stdio): search, similar, "
                                 "status and reindex over the workspace, kept up to date as files change.")
    ap.add_argument("root", nargs="?", metavar="PATH", help="the workspace folder (default: the current directory)")
    ap.add_argument("--root", dest="root_option", metavar="PATH", help="the same, as an option")
    ap.add_argument("--index-dir", help="where the index lives (default: <workspace>/.sg)")
    ap.add_argument("--model-path", help="a local model directory (e.g. one made by `sg tune`)")
    ap.add_argument("--trust-remote-code", action="store_true",
                    help="allow models that run their own code (Jina); only for models you trust")
    ap.add_argument("--no-models", action="store_true", help="lexical search only (no embedding model)")
    ap.add_argument("--no-watch", action="store_true", help="do not watch files (call the reindex tool instead)")
    ap.add_argument("--log-level", default=os.environ.get("SG_MCP_LOG", "WARNING"), type=str.upper,
                    choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ap.add_argument("--log-file", help="append logs here instead of stderr")
    ap.add_argument("--version", action="version", version=f"sg-mcp {__version__}")
    return ap


def overrides(args: argparse.Namespace) -> dict:
    models: dict = {}
    index: dict = {}
    if args.model_path:
        models["model_path"] = str(Path(args.model_path).expanduser().resolve())
    if args.trust_remote_code:
        models["trust_remote_code"] = True
    if args.no_models:
        models["enabled"] = False
    if args.index_dir:
        index["index_dir"] = str(Path(args.index_dir).expanduser().resolve())
    return {k: v for k, v in (("models", models), ("index", index)) if v}


def main(argv: list[str] | None = None) -> int:
    args = build_parser("sg-mcp" if argv is None else "sg mcp").parse_args(argv)
    if args.root and args.root_option and Path(args.root).resolve() != Path(args.root_option).resolve():
        print("sg mcp: error: PATH and --root name different folders", file=sys.stderr)
        return 2
    root = Path(args.root or args.root_option or ".").expanduser()
    if not root.is_dir():
        print(f"sg mcp: error: {root} is not a directory", file=sys.stderr)
        return 2

    # stdout carries the protocol: logs go to stderr (or a file), never to stdout.
    handler = logging.FileHandler(args.log_file, encoding="utf-8") if args.log_file else \
        logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("sg_mcp").setLevel(args.log_level)

    from engine import load_settings  # heavy imports after argument parsing, so --help is instant

    try:
        from .server import build_server
    except ImportError as exc:  # the MCP SDK is a dependency, but an install can still lack it
        print(f"sg mcp: error: the MCP SDK cannot be imported ({exc}); pip install 'mcp>=2.3,<3'", file=sys.stderr)
        return 2
    from .workspace import Workspace

    problems: list[str] = []
    settings = load_settings(root, overrides(args), problems, lenient=True)
    for p in problems:
        logging.getLogger("sg_mcp").warning("settings: %s", p)
    # An agent configured once for every project may start the server in the home directory (or /): indexing all
    # of it by accident would take hours, so a folder that was not named is refused there, and the tools say why.
    named = bool(args.root or args.root_option)
    refuse = "" if named or root.resolve() not in (Path.home().resolve(), Path("/")) else \
        f"sg mcp was started in {root.resolve()}, not in a project: start it in the project folder or name it " \
        "(sg mcp PATH)"
    ws = Workspace(root, settings, watch=not args.no_watch, refuse=refuse)
    server = build_server(ws)
    ws.start()  # the index opens, the models warm and indexing runs while the client connects
    try:
        server.run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        ws.close()
        logging.shutdown()
    # Exit at once, as sg-lsp does: a model still loading in a daemon thread must not hold the process (the client
    # waits a couple of seconds for it, then kills it).
    sys.stdout.flush()
    os._exit(0)
