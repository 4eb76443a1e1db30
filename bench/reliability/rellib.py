"""Shared pieces of the reliability tests and benches: a raw JSON-RPC client for the real `sg-lsp --stdio`
process, a seeded message fuzzer, a save/search storm with version markers, and workspace builders."""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "sg_lsp", "--stdio"]
LEXICAL = {"models": {"enabled": False}}
QUERIES = ["check if a variable is iterable", "read a file line by line", "convert string to datetime",
           "remove duplicates from a list", "sort a dictionary by value"]


def marker(i: int, v: int) -> str:
    """A unique, letters-only token for version v of file i (digits would be split off by the tokenizer)."""
    return "zq" + "".join("abcdefghij"[int(d)] for d in str(i)) + "x" + "".join("abcdefghij"[int(d)] for d in str(v))


def copy_corpus(bench: Path, dest: Path, n: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted((bench / "cosqa" / "corpus").iterdir())[:n]:
        shutil.copy(f, dest / f.name)
    return dest


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Raw:
    """The server process with hand-framed messages. Answers the server's own requests with null."""

    def __init__(self, env: dict[str, str] | None = None, stderr: Path | None = None):
        self.stderr_path = stderr
        err = open(stderr, "wb") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                     env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        self.inbox: queue.Queue = queue.Queue()
        self.responses: dict[str, list[dict]] = {}  # json(id) -> every response seen with that id
        self.taken: set[str] = set()  # ids whose response `take` consumed
        self.duplicates: list[dict] = []  # a response to an already-answered id (never valid for non-null ids)
        self.cond = threading.Condition()
        self.closed = False
        self.lock = threading.Lock()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self.cond:
                        self.closed = True
                        self.cond.notify_all()
                    return
                if not line.strip():
                    break
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            if "method" in msg:
                if "id" in msg:  # a request from the server (progress, registration, configuration)
                    self.send({"id": msg["id"], "result": None})
                continue
            with self.cond:
                key = json.dumps(msg.get("id"))
                if key != "null" and (key in self.taken or self.responses.get(key)):
                    self.duplicates.append(msg)
                self.responses.setdefault(key, []).append(msg)
                self.cond.notify_all()

    # -- sending -----------------------------------------------------------------------------------------------
    def write(self, raw: bytes) -> None:
        with self.lock:
            self.proc.stdin.write(raw)
            self.proc.stdin.flush()

    def send_bytes(self, body: bytes) -> None:
        self.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def send(self, message: dict) -> None:
        self.send_bytes(json.dumps({"jsonrpc": "2.0", **message}).encode())

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return 10_000_000 + self.next_id

    def request(self, method: str, params: Any = None) -> int:
        msg_id = self.new_id()
        self.send({"id": msg_id, "method": method, **({} if params is None else {"params": params})})
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, **({} if params is None else {"params": params})})

    # -- receiving ---------------------------------------------------------------------------------------------
    def wait(self, ids: list[Any], timeout: float = 30.0) -> dict[Any, dict]:
        keys = [json.dumps(i) for i in ids]
        end = time.monotonic() + timeout
        with self.cond:
            while not all(k in self.responses for k in keys):
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    missing = [k for k in keys if k not in self.responses]
                    raise AssertionError(f"no response for {len(missing)} ids, e.g. {missing[:5]} "
                                         f"(server {'exited' if self.closed else 'alive'})")
                self.cond.wait(min(left, 0.5))
            return {i: self.responses[k][0] for i, k in zip(ids, keys)}

    def take(self, ids: set | list, timeout: float = 30.0) -> dict[Any, dict]:
        """Like `wait`, but each response is consumed, so a later take of the same id (null, say) waits for a
        new one; fails if any id was answered twice."""
        ids = list(ids)
        keys = [json.dumps(i) for i in ids]
        end = time.monotonic() + timeout
        with self.cond:
            while not all(self.responses.get(k) for k in keys):
                left = end - time.monotonic()
                assert left > 0 and not self.closed, \
                    f"no response for {[k for k in keys if not self.responses.get(k)]}; answered: {self.responses}"
                self.cond.wait(min(left, 0.5))
            assert not self.duplicates, f"two responses for one id: {self.duplicates}"
            self.taken.update(keys)
            return {i: self.responses[k].pop(0) for i, k in zip(ids, keys)}

    def close(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit by itself (after `exit`); its exit code."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> dict:
        msg_id = self.request(method, params)
        return self.wait([msg_id], timeout)[msg_id]

    def initialize(self, root: Path, options: dict | None, capabilities: dict | None = None) -> dict:
        res = self.call("initialize", {"processId": None, "rootUri": root.as_uri(),
                                       "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                                       "capabilities": capabilities or {}, "initializationOptions": options})
        self.notify("initialized", {})
        return res

    def wait_ready(self, timeout: float = 120.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            st = self.call("sg/status")["result"]
            if st["state"] == "ready" or time.monotonic() > end:
                return st
            time.sleep(0.2)

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def shutdown(self, timeout: float = 20.0) -> int:
        try:
            self.call("shutdown", timeout=timeout)
            self.notify("exit")
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def save_storm_then_kill(root: Path, names: list[str], options: dict, rng: random.Random, seconds: float,
                         tag: int) -> bool:
    """Start the server on `root`; for `seconds`, append a function carrying marker(tag, n) to a random file of
    `names` and send didSave for it; then SIGKILL the server in the middle of that re-indexing. True when the kill
    met a live server (False: it had already exited, so nothing was killed)."""
    srv = Raw()
    try:
        srv.initialize(root, options)
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:  # a didSave storm over files that really change
            name = rng.choice(names)
            with open(root / name, "a", encoding="utf-8") as fh:
                fh.write(f"\n\ndef saved_{tag}_{n}():\n    return '{marker(tag, n)}'\n")
            srv.notify("textDocument/didSave", {"textDocument": {"uri": (root / name).as_uri()}})
            n += 1
            time.sleep(0.005)
    finally:
        alive = srv.proc.poll() is None
        srv.proc.send_signal(signal.SIGKILL)
        code = srv.proc.wait(10)
    return alive and code == -signal.SIGKILL


# -- fuzzing ---------------------------------------------------------------------------------------------------
METHODS = ["sg/search", "sg/similar", "sg/status", "workspace/symbol", "textDocument/codeAction",
           "workspace/executeCommand", "sg/reindex", "initialize", "no/such", "textDocument/hover",
           "textDocument/definition", "$/weird", "sg/search"]  # not sg/tune: it would start a real training job
NOTIFICATIONS = ["textDocument/didSave", "workspace/didChangeWatchedFiles", "$/cancelRequest",
                 "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose",
                 "workspace/didChangeConfiguration", "no/suchNotification", "$/setTrace",
                 "window/workDoneProgress/cancel"]


@dataclass
class Fuzzer:
    """Seeded generator of hostile LSP traffic. Every request it sends carries a fresh, valid id that must get
    exactly one response; ids it deliberately breaks (float, object) only get id-null errors."""

    root: Path
    outside: Path
    seed: int = 0
    rng: random.Random = field(init=False)
    expected: list[Any] = field(default_factory=list)  # ids that must be answered exactly once
    bodies: dict[str, str] = field(default_factory=dict)  # json(id) -> the request, truncated (for reports)
    sent: int = 0
    initialize: bool = True  # False before the real initialize: a fuzzed one could succeed
    kinds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        c = r.randrange(12 if depth < 3 else 8)
        if c == 0:
            return None
        if c == 1:
            return r.choice([True, False])
        if c == 2:
            return r.choice([0, -1, 1, 2**31, -2**63, 2**64, 10**30, 7])
        if c == 3:
            return r.choice([0.5, -1e308, 1e308, 3.0])
        if c == 4:
            return r.choice(["", "x", "fibonacci", "日本語😀", "\u0000\ud7ff", "../../etc/passwd", "a" * 5000,
                             "file:///etc/passwd", self.root.as_uri() + "/../secret.txt", "\n\r\t"])
        if c == 5:
            return self.uri()
        if c == 6:
            return "".join(chr(r.randrange(32, 0x2FFF)) for _ in range(r.randrange(1, 40)))
        if c == 7:
            return r.choice(["z" * r.choice([10, 1000, 100_000]), "q " * 3000])
        if c in (8, 9):
            return {r.choice(["query", "limit", "uri", "textDocument", "position", "line", "paths", "mode", "x",
                              "command", "arguments", "range", "context", "id", "changes", "settings"]):
                    self.value(depth + 1) for _ in range(r.randrange(0, 5))}
        return [self.value(depth + 1) for _ in range(r.randrange(0, 5))]

    def uri(self) -> str:
        r = self.rng
        return r.choice([
            (self.root / "src" / "mathutil.py").as_uri(), (self.root / "src" / "nope.py").as_uri(),
            self.root.as_uri(), self.outside.as_uri(), (self.root / ".." / self.outside.name).as_uri(),
            "file:///etc/passwd", "untitled:Untitled-1", "http://example.com/x.py", "file://", "not a uri",
            (self.root / "src" / "mathutil.py").as_uri() + "%00", "file:///" + "a/" * 300])

    def position(self) -> dict:
        r = self.rng
        return {"line": r.choice([0, 3, -1, 10**9, 2**31 - 1, 2**31, "a", None]),
                "character": r.choice([0, 5, -5, 10**9, 2**31, 1.5, None])}

    def params_for(self, method: str) -> Any:
        r = self.rng
        if r.random() < 0.3:
            return self.value()
        if method == "sg/search":
            p: dict = {"query": r.choice(["fibonacci", "sum of squares", "", "x" * r.choice([10, 2001, 100_000]),
                                          "日本語", "*?[", "\"unterminated", "AND OR NOT", "fib*", "NEAR(a b)"]),
                       "limit": r.choice([1, 10, 0, -1, 200, 201, 10**9, "5", None, 2.5]),
                       "mode": r.choice(["hybrid", "semantic", "lexical", "bogus", 3, None]),
                       "paths": r.choice([None, ["src/**"], ["../*"], ["/etc"], [3], "src", [self.outside.as_uri()],
                                          ["[unclosed"], ["**/" * 200]]),
                       "explain": r.choice([True, False, "yes"])}
            for k in list(p):
                if r.random() < 0.2:
                    del p[k]
            return p
        if method in ("sg/similar", "textDocument/codeAction", "textDocument/hover", "textDocument/definition"):
            p = {"textDocument": {"uri": self.uri()}, "position": self.position(),
                 "range": {"start": self.position(), "end": self.position()}, "context": {"diagnostics": []},
                 "uri": self.uri(), "line": self.position()["line"], "limit": r.choice([1, 0, 10**6])}
            for k in list(p):
                if r.random() < 0.2:
                    del p[k]
            return p
        if method == "workspace/symbol":
            return {"query": r.choice(["fib", "", "x" * 100_000, None, 5, "Matrix"])}
        if method == "workspace/executeCommand":
            return {"command": r.choice(["sg.findSimilar", "nope", 5]),
                    "arguments": r.choice([[self.uri(), 3], [self.uri(), -1], [{"textDocument": {"uri": self.uri()},
                                                                                "position": self.position()}],
                                           "abc", [None], []])}
        if method == "initialize":
            return {"capabilities": {}, "processId": None}
        return self.value()

    def notification_params(self, method: str) -> Any:
        r = self.rng
        if method == "workspace/didChangeConfiguration":
            # Always with models off: a configuration that enables models legitimately loads them (~400 MB),
            # which would hide a real leak in the RSS figure.
            section = r.choice([{"search": {"max_results": r.choice([5, -1, "x", 10**9])}},
                                {"search": {"mode": "bogus"}}, {"search": {"mode": "lexical"}},
                                {"index": {"max_file_bytes": r.choice([0, "big", 2000])}},
                                {"nonsense": self.value()}]) | {"models": {"enabled": False}}
            return {"settings": {"sg": section} if r.random() < 0.5 else section}
        if r.random() < 0.3:
            return self.value()
        if method == "textDocument/didSave":
            return {"textDocument": {"uri": self.uri()}, "text": r.choice([None, "def x(): pass\n"])}
        if method == "workspace/didChangeWatchedFiles":
            return {"changes": [{"uri": self.uri(), "type": r.choice([1, 2, 3, 0, 99, "x"])}
                                for _ in range(r.randrange(0, 6))]}
        if method == "$/cancelRequest":
            ids = self.expected[-20:] or [1]
            return {"id": r.choice([r.choice(ids), r.choice(ids), 99999, "nope", None, 1.5])}
        if method == "textDocument/didOpen":
            return {"textDocument": {"uri": self.uri(), "languageId": "python", "version": r.randrange(100),
                                     "text": r.choice(["def f():\n  pass\n", "日本語😀\r\n" * 50, "x" * 20_000])}}
        if method == "textDocument/didChange":
            return {"textDocument": {"uri": self.uri(), "version": r.randrange(100)},
                    "contentChanges": [{"text": "y"}, {"range": {"start": self.position(), "end": self.position()},
                                                       "text": "z"}][: r.randrange(0, 3)]}
        if method == "textDocument/didClose":
            return {"textDocument": {"uri": self.uri()}}
        if method == "window/workDoneProgress/cancel":
            return {"token": r.choice(["x", 1, None])}
        return self.value()

    def request_id(self) -> Any:
        self.sent += 1
        msg_id = self.rng.choice([50_000_000 + self.sent, f"fz-{self.sent}"])
        self.expected.append(msg_id)
        return msg_id

    def _count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def message(self) -> bytes:
        """One framed (or deliberately mis-framed, but re-synchronising) chunk of bytes."""
        r = self.rng
        c = r.random()
        if c < 0.45:
            method = r.choice(METHODS if self.initialize else [m for m in METHODS if m != "initialize"])
            self._count("request")
            msg = {"jsonrpc": "2.0", "id": self.request_id(), "method": method, "params": self.params_for(method)}
            if r.random() < 0.1:
                del msg["params"]
            body = json.dumps(msg)
            self.bodies[json.dumps(msg["id"])] = body[:300]
            return frame(body.encode())
        if c < 0.75:
            method = r.choice(NOTIFICATIONS)
            self._count("notification")
            return frame(json.dumps({"jsonrpc": "2.0", "method": method,
                                     "params": self.notification_params(method)}).encode())
        if c < 0.85:
            self._count("malformed-json")
            if r.random() < 0.3:  # broken in ways that still carry a usable id: answered with that id
                i = json.dumps(self.request_id()).encode()
                body = r.choice([b'{"jsonrpc": "1.0", "id": %s, "method": "x"}', b'{"jsonrpc": "2.0", "id": %s, "method": 5}',
                                 b'{"jsonrpc": "2.0", "method": "sg/search", "id": %s, "params": {"query": "\\ud800"}}',
                                 b'{"jsonrpc": "2.0", "method": "sg/status", "id": %s, "params": "str"}',
                                 b'{"id": %s, "method": "sg/status"}']) % i
            else:
                body = r.choice([b'{"jsonrpc": "2.0", "id": 1, "method": ', b"\xff\xfe\x00garbage", b"[]", b"[1, 2]",
                                 b"null", b"42", b'"str"', b"{}",
                                 b'{"jsonrpc": "2.0", "id": 1.5, "method": "sg/status"}',
                                 b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "sg/status"}',
                                 b'{"jsonrpc": "2.0", "id": null, "method": "sg/status"}',
                                 b'{"jsonrpc": "2.0", "result": 1, "id": 424242}',
                                 b'{"jsonrpc": "2.0", "error": {"code": 1}, "id": "zz"}',
                                 b'{"a": ' * 50_000, b"[" * 100_000 + b"]" * 100_000,
                                 json.dumps({"x": "y" * 300_000}).encode()])
            return frame(body)
        self._count("bad-header")
        # Bad headers that a reader can recover from: each ends at a blank line or a complete junk line.
        return r.choice([b"Content-Length: -5\r\n\r\n", b"Content-Length: abc\r\n\r\n", b"X-Junk: 1\r\n",
                         b"content-length: 10\r\n\r\n", b"Content-Length: \r\n\r\n", b"\r\n\r\n",
                         b"Content-Type: application/json\r\n" + frame(b'{"jsonrpc": "2.0", "method": "x"}'),
                         b"Content-Length: 5\r\n\r\n{\"a\":" + b"junk tail\r\n",  # shorter than the body
                         b"Content-Length: 0\r\n\r\n", b"garbage line " * 1000 + b"\r\n",
                         b"Content-Length: 1e9\r\n\r\n"])


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def check_answers(srv: Raw, expected: list[Any], timeout: float = 60.0) -> dict[str, int]:
    """Every expected id answered exactly once, with a result or a JSON-RPC error; no response for unknown ids."""
    got = srv.wait(expected, timeout)
    dup = [k for k, v in srv.responses.items() if len(v) > 1 and k != "null"]
    assert not dup, f"ids answered more than once: {dup[:5]}"
    known = {json.dumps(i) for i in expected}
    strays = [k for k in srv.responses if k not in known and k != "null" and not k.startswith("1000")]
    assert not strays, f"responses for ids never sent: {strays[:5]}"
    codes: dict[str, int] = {}
    for msg in got.values():
        assert ("result" in msg) != ("error" in msg), msg
        key = "result" if "result" in msg else str(msg["error"]["code"])
        codes[key] = codes.get(key, 0) + 1
    return codes


# -- the save/search storm -------------------------------------------------------------------------------------
def storm_workspace(root: Path, files: int) -> dict[int, int]:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        write_version(root, i, 0)
    return {i: 0 for i in range(files)}


def storm_path(root: Path, i: int) -> Path:
    return root / "pkg" / f"mod{i}.py"


def write_version(root: Path, i: int, v: int) -> None:
    tmp = storm_path(root, i).with_suffix(".tmp")
    tmp.write_text(f'def handler_{i}(request):\n    """Handle {marker(i, v)} requests."""\n'
                   f'    return "{marker(i, v)}"\n', encoding="utf-8")
    os.replace(tmp, storm_path(root, i))  # editors save atomically: a reader sees the old or the new file


def has_marker(text: str, m: str) -> bool:
    return re.search(rf"\b{m}\b", text) is not None


@dataclass
class StormStats:
    ops: int = 0
    saves: int = 0
    deletes: int = 0
    searches: int = 0
    violations: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def storm(srv: Raw, root: Path, ops: int, seed: int, files: int = 12, settle: float = 60.0) -> StormStats:
    """Interleave saves / watcher events / deletes with lexical searches for version markers. Checks that a
    search for marker(i, v) only ever returns file i with a chunk that contains the marker, never a marker
    that was not yet written, and that after the storm each file's final marker (and only it) is findable."""
    rng = random.Random(seed)
    version = storm_workspace(root, files) if not storm_path(root, 0).exists() else {i: 0 for i in range(files)}
    deleted: set[int] = set()
    st = StormStats()
    searches: list[tuple[int, int, int, bool]] = []  # (id, file, version, never-written)
    for _ in range(ops):
        st.ops += 1
        i = rng.randrange(files)
        c = rng.random()
        if c < 0.4:
            version[i] += 1
            write_version(root, i, version[i])
            deleted.discard(i)
            st.saves += 1
            uri = storm_path(root, i).as_uri()
            if rng.random() < 0.5:
                srv.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
            else:
                srv.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": uri, "type": 2}]})
        elif c < 0.45 and i not in deleted:
            storm_path(root, i).unlink()
            deleted.add(i)
            st.deletes += 1
            srv.notify("workspace/didChangeWatchedFiles",
                       {"changes": [{"uri": storm_path(root, i).as_uri(), "type": 3}]})
        else:
            future = rng.random() < 0.15
            v = version[i] + 1000 if future else rng.randrange(version[i] + 1)
            msg_id = srv.request("sg/search", {"query": marker(i, v), "limit": 10, "mode": "lexical"})
            searches.append((msg_id, i, v, future))
            st.searches += 1
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.02))
    answers = srv.wait([s[0] for s in searches], timeout=120)
    for msg_id, i, v, future in searches:
        msg = answers[msg_id]
        if "error" in msg:
            st.violations.append(f"search {marker(i, v)} failed: {msg['error']}")
            continue
        for hit in msg["result"]["results"]:
            if hit["path"] != f"pkg/mod{i}.py" or future:
                st.violations.append(f"search {marker(i, v)} returned {hit['path']} (future={future})")
            elif not has_marker(hit["snippet"], marker(i, v)):
                st.violations.append(f"search {marker(i, v)} returned a chunk without it: {hit['snippet'][:80]!r}")
    # After the storm: each file's final marker is found (or none if deleted) and no older marker survives.
    end = time.monotonic() + settle
    while True:
        st.lost, st.stale = [], []
        ids = {}
        for i in range(files):
            ids[i] = srv.request("sg/search", {"query": " ".join(marker(i, v) for v in range(version[i] + 1)),
                                               "limit": 50, "mode": "lexical"})
        res = srv.wait(list(ids.values()), timeout=60)
        for i, msg_id in ids.items():
            found = {m for h in res[msg_id]["result"]["results"] for m in
                     [marker(i, v) for v in range(version[i] + 1)] if has_marker(h["snippet"], m)}
            want = set() if i in deleted else {marker(i, version[i])}
            if want - found:
                st.lost.append(f"pkg/mod{i}.py: {sorted(want - found)} not found")
            if found - want:
                st.stale.append(f"pkg/mod{i}.py: stale {sorted(found - want)}")
        if (not st.lost and not st.stale) or time.monotonic() > end:
            return st
        time.sleep(0.5)
