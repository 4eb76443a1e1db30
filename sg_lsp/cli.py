"""`sg-lsp --stdio` (what editors run) or `sg-lsp --tcp HOST:PORT` (to attach a client while debugging)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, BinaryIO, cast

from . import __version__


def _parse_tcp(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


# A Content-Length beyond this is refused (pygls would allocate whatever the header claims and die of
# MemoryError); header lines are read in pieces of at most _MAX_LINE bytes for the same reason.
MAX_MESSAGE_BYTES = 64 << 20
_MAX_LINE = 64 << 10


class BoundedStdin:
    """stdin for pygls' reader with bounded reads, so a bad or hostile header cannot exhaust memory."""

    def __init__(self, raw: Any, max_message: int = MAX_MESSAGE_BYTES):
        self.raw = raw
        self.max_message = max_message

    def readline(self) -> bytes:
        return self.raw.readline(_MAX_LINE)

    def read(self, n: int) -> bytes:
        if n <= self.max_message:
            return self.raw.read(n)
        # Skip the oversized body (keeping the framing) and hand the protocol a non-object, which it answers
        # with an InvalidRequest error (id null) instead of crashing.
        left = n
        while left > 0:
            chunk = self.raw.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        return b'"message of %d bytes exceeds the %d-byte limit"' % (n, self.max_message)


class _ExpectedErrors(logging.Filter):
    """pygls logs a traceback for every error response; ours (bad params, cancelled, failed) are expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return getattr(exc, "code", -32603) == -32603


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sg-lsp", description="sg semantic code search language server")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    how.add_argument("--tcp", type=_parse_tcp, metavar="HOST:PORT", help="listen on a TCP socket (debugging)")
    parser.add_argument("--log-level", default=os.environ.get("SG_LSP_LOG", "WARNING"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.add_argument("--log-file", help="append logs here instead of stderr")
    parser.add_argument("--version", action="version", version=f"sg-lsp {__version__}")
    args = parser.parse_args(argv)

    # stdout carries the protocol: logs go to stderr (or a file), never to stdout.
    handler = logging.FileHandler(args.log_file, encoding="utf-8") if args.log_file else logging.StreamHandler(
        sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("sg_lsp").setLevel(args.log_level)
    if args.log_level == "DEBUG":
        logging.getLogger("pygls").setLevel(logging.DEBUG)
    else:
        logging.getLogger("pygls.protocol.json_rpc").addFilter(_ExpectedErrors())

    from .server import server  # heavy imports after argument parsing, so --help is instant

    try:
        if args.tcp:
            server.start_tcp(*args.tcp)
        else:
            server.start_io(stdin=cast(BinaryIO, BoundedStdin(sys.stdin.buffer)))  # pygls calls readline and read
    except SystemExit:
        pass
    finally:
        server.session.stop()
        logging.shutdown()
    # Exit at once: a pygls reader thread may still sit in stdin.readline(), and joining it would hang.
    sys.stdout.flush() if not sys.stdout.closed else None
    os._exit(0 if server.session.shutdown_requested else 1)
