"""`sg models pull` against a local hub: a 127.0.0.1 HTTP server with the endpoints huggingface_hub calls.

The server serves the PyLate BERT fixture as repo sg-test/tiny-colbert (plus a file sg does not read), and the
same files under a non-commercial card as sg-test/nc-colbert. HF_ENDPOINT points at it, HF_HOME at a temp dir.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from engine import cli
from engine.embed import files, pull
from engine.errors import ModelError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pylate" / "bert"
OK_ID = "sg-test/tiny-colbert"
NC_ID = "sg-test/nc-colbert"
BIG = "model.safetensors"


def _repo(card_licence: str) -> dict[str, bytes]:
    out = {str(p.relative_to(FIXTURE)): p.read_bytes() for p in FIXTURE.rglob("*") if p.is_file()}
    out["README.md"] = f"---\nlicense: {card_licence}\nlibrary_name: PyLate\n---\n# tiny\n".encode()
    out["onnx/model.onnx"] = b"\0" * 4096  # not a file sg reads: must not be downloaded
    out[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    return out


class Hub:
    """The hub's model-info, tree and resolve endpoints over a dict of repos; can drop a download mid-file."""

    def __init__(self) -> None:
        self.repos = {OK_ID: _repo("apache-2.0"), NC_ID: _repo("cc-by-nc-4.0")}
        self.sha = {r: hashlib.sha1(r.encode()).hexdigest() for r in self.repos}
        self.drops = 0  # GETs of BIG to cut off after half the bytes
        self.ranges: list[str] = []
        self.gets: list[str] = []
        self.served: list[str] = []  # files whose whole body was sent
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub.serve(self, head=True)

            def do_GET(self) -> None:
                hub.serve(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _json(self, h, body, status: int = 200) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _find(self, parts: list[str]) -> tuple[str | None, list[str]]:
        repo = "/".join(parts[:2])
        return (repo if repo in self.repos else None), parts[2:]

    def serve(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"]:
            repo, rest = self._find(parts[2:])
            if repo is None:
                return self._json(h, {"error": "Repository not found"}, 404)
            files_ = self.repos[repo]
            if rest[:1] == ["tree"]:
                return self._json(h, [{"type": "file", "path": name, "size": len(data),
                                       "oid": hashlib.sha1(data).hexdigest()} for name, data in files_.items()])
            licence = "cc-by-nc-4.0" if repo == NC_ID else "apache-2.0"
            return self._json(h, {"id": repo, "modelId": repo, "sha": self.sha[repo], "private": False,
                                  "tags": ["PyLate", f"license:{licence}"], "cardData": {"license": licence},
                                  "siblings": [{"rfilename": n} for n in files_]})
        repo, rest = self._find(parts)
        if repo is None or len(rest) < 3 or rest[0] != "resolve":
            return self._json(h, {"error": "not found"}, 404)
        name = "/".join(rest[2:])
        data = self.repos[repo].get(name)
        if data is None:
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        rng = h.headers.get("Range")
        if rng and not head:
            self.ranges.append(f"{name}:{rng}")
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", self.sha[repo])
        h.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        self.gets.append(name)
        body = data[start:]
        if name == BIG and self.drops > 0:
            self.drops -= 1
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
            h.close_connection = True
            return
        h.wfile.write(body)
        self.served.append(name)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = Hub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hc

    # small reads, so a dropped connection leaves a partial file to resume from
    monkeypatch.setattr(hc, "DOWNLOAD_CHUNK_SIZE", 8192)
    yield server
    server.close()


def _pull(tmp_path: Path, *args: str) -> int:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return cli.main(["models", "pull", *args, "--root", str(ws), "-q"])


def test_full_download(hub, tmp_path, capsys):
    assert _pull(tmp_path, OK_ID) == 0
    out = capsys.readouterr().out
    assert "in the local Hugging Face cache" in out and f'models.code = "{OK_ID}"' in out
    snap = files.locate(OK_ID)
    for name, data in hub.repos[OK_ID].items():
        if name.startswith("onnx/") or name == ".gitattributes":
            assert not (snap / name).exists(), name
        else:
            assert (snap / name).read_bytes() == data, name
    # configured for the code route: `sg models` shows it (PyLate, multi-vector) and `sg index` embeds with it
    ws = tmp_path / "ws"
    (ws / ".sg.toml").write_text(f'[models]\ncode = "{OK_ID}"\nprose = "{OK_ID}"\n')
    (ws / "a.py").write_text("def parse_config(path):\n    return json.load(open(path))\n")
    assert cli.main(["models", str(ws)]) == 0
    out = capsys.readouterr().out
    assert OK_ID in out and "multi-vector, 16-d, PyLate" in out, out
    assert cli.main(["index", str(ws), "-q"]) == 0
    res = capsys.readouterr()
    assert " 0 embedded" not in res.out and " embedded" in res.out, res.out
    assert f"code: {OK_ID} (multi-vector, 16-d)" in res.err, res.err


def test_resumed_download(hub, tmp_path, capsys):
    hub.drops = 1  # the first GET of the weights stops half-way; huggingface_hub asks for the rest
    assert _pull(tmp_path, OK_ID) == 0
    assert any(r.startswith(f"{BIG}:bytes=") and not r.endswith("=0-") for r in hub.ranges), hub.ranges
    assert (files.locate(OK_ID) / BIG).read_bytes() == hub.repos[OK_ID][BIG]


def test_failed_download_is_not_used_and_finishes_later(hub, tmp_path, capsys):
    hub.drops = 100  # every attempt at the weights is cut off: huggingface_hub gives up after its retries
    assert _pull(tmp_path, OK_ID) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"run `sg models pull {OK_ID}` again" in err, err
    with pytest.raises(ModelError):  # the half-fetched snapshot is not a model to sg
        files.locate(OK_ID)
    finished = set(hub.served)
    assert finished and BIG not in finished, finished
    hub.drops, hub.gets = 0, []
    assert _pull(tmp_path, OK_ID) == 0
    # nothing fetched twice, apart from the small files every pull reads first to check the opt-ins
    assert BIG in hub.gets and not (finished - {"config.json", "README.md"}) & set(hub.gets), (finished, hub.gets)
    assert (files.locate(OK_ID) / BIG).read_bytes() == hub.repos[OK_ID][BIG]


def test_refused_licence(hub, tmp_path, capsys):
    assert _pull(tmp_path, NC_ID) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"sg: not downloading {NC_ID}: it needs models.allow_noncommercial = true in .sg.toml "
                   "(its licence is CC-BY-NC-4.0, non-commercial use only)"), err
    assert hub.gets == [] or set(hub.gets) <= {"config.json", "README.md"}, hub.gets  # no weights fetched
    assert not (tmp_path / "hf" / "hub" / ("models--" + NC_ID.replace("/", "--"))).exists()
    # with the opt-in it goes ahead
    ws = tmp_path / "ws"
    (ws / ".sg.toml").write_text("[models]\nallow_noncommercial = true\n")
    assert _pull(tmp_path, NC_ID) == 0
    assert (files.locate(NC_ID) / BIG).is_file()


def test_no_network(tmp_path, monkeypatch, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert _pull(tmp_path, OK_ID) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"sg: cannot reach the Hugging Face hub at http://127.0.0.1:{port}"), err
    with pytest.raises(ModelError):
        files.locate(OK_ID)
    hub_dir = tmp_path / "hf" / "hub"
    assert not hub_dir.exists() or not any(hub_dir.rglob("refs/*")), list(hub_dir.rglob("*"))


def test_allow_patterns() -> None:
    st = pull.allow_patterns(["model.safetensors", "pytorch_model.bin", "2_Dense/pytorch_model.bin"], False)
    assert "pytorch_model.bin" not in st and "2_Dense/pytorch_model.bin" in st  # XTR: safetensors + a .bin Dense
    assert "pytorch_model.bin" in pull.allow_patterns(["pytorch_model.bin", "training_args.bin"], False)
    assert "training_args.bin" not in pull.allow_patterns(["pytorch_model.bin", "training_args.bin"], False)
    assert "*.py" in pull.allow_patterns([], True) and "*.py" not in pull.allow_patterns([], False)
