"""Finding model directories offline (explicit path or the local Hugging Face cache) and vetting their files.

Nothing here imports torch: locating, hashing and licence/remote-code checks must stay cheap so that
`sg models` and lexical-only runs never pay for a model load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError

# Known licences that need an explicit opt-in; the README front matter is checked as well.
NONCOMMERCIAL_MODELS = {"jinaai/jina-colbert-v2": "CC-BY-NC-4.0"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_NC_LICENSE = re.compile(r"^license:\s*(cc-by-nc[\w.-]*)\s*$", re.IGNORECASE | re.MULTILINE)

# Files at least this large are hashed by sampling; smaller ones (every MiniLM-sized model) in full.
_FULL_HASH_LIMIT = 1 << 30
_SAMPLE = 1 << 20
_REMEMBER_FROM = 8 << 20  # smaller files hash in milliseconds: not worth remembering


def hf_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it, read at call time so an environment change is honoured."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def display_cache_dir() -> str:
    path = str(hf_cache_dir())
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path


def locate(name_or_path: str) -> Path:
    """A model directory on disk: an existing directory as given, else the cached snapshot of a hub repo id.

    Never downloads (local_files_only). Raises ModelError with a one-line reason.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    if not _HUB_ID.fullmatch(name_or_path):
        raise ModelError(f"{name_or_path} is not a directory")
    # The cache layout read directly: importing huggingface_hub costs ~1 s of every cold start, and the
    # configured hub models are usually absent (the offline default serves instead).
    repo_dir = hf_cache_dir() / ("models--" + name_or_path.replace("/", "--"))
    missing = (f"{name_or_path} is not in the local Hugging Face cache ({display_cache_dir()}; "
               f"`sg models pull {name_or_path}` fetches it)")
    if not repo_dir.is_dir():
        raise ModelError(missing)
    try:
        rev = (repo_dir / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        rev = ""
    snap = repo_dir / "snapshots" / rev if rev else None
    if snap is not None and snap.is_dir() and ((snap / "config.json").is_file() or (snap / "modules.json").is_file()):
        return snap
    try:
        from huggingface_hub import snapshot_download

        found = snapshot_download(name_or_path, cache_dir=str(hf_cache_dir()), local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError, a malformed id, a half-written cache entry
        raise ModelError(missing) from exc
    snap = Path(found)
    if not (snap / "config.json").is_file() and not (snap / "modules.json").is_file():
        raise ModelError(f"{name_or_path} is only partly in the local Hugging Face cache ({snap}): no config.json; "
                         f"`sg models pull {name_or_path}` completes it")
    return snap


def read_json(path: Path) -> Any:  # an object (config.json) or a list (modules.json)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, (dict, list)):
        raise ModelError(f"{path} does not hold a JSON object")
    return data


def read_json_opt(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


@dataclass(frozen=True)
class Weights:
    """The weight files of one module directory: safetensors if present, else weights_only-checked .bin files."""

    files: tuple[Path, ...]
    safetensors: bool


def weight_files(directory: Path) -> Weights:
    """Prefer safetensors (single or sharded); fall back to PyTorch .bin files, which are vetted before use."""
    single = directory / "model.safetensors"
    if single.is_file():
        return Weights((single,), True)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return Weights(tuple(directory / s for s in shards), True)
    loose = sorted(directory.glob("*.safetensors"))
    if loose:
        return Weights(tuple(loose), True)
    single_bin = directory / "pytorch_model.bin"
    if single_bin.is_file():
        return Weights((single_bin,), False)
    bin_index = directory / "pytorch_model.bin.index.json"
    if bin_index.is_file():
        shards = sorted(set(read_json(bin_index).get("weight_map", {}).values()))
        return Weights(tuple(directory / s for s in shards), False)
    raise ModelError(f"no weights (model.safetensors or pytorch_model.bin) in {directory}")


def check_bin(path: Path) -> None:
    """Refuse a pickled .bin unless it loads with torch.load(weights_only=True): tensors and plain containers only."""
    import pickle

    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{path} is a pickle that does not load with torch.load(weights_only=True) (it holds more than "
            f"tensors); refused. Convert it to safetensors. ({str(exc).splitlines()[0][:160]})"
        ) from exc


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors header, read without torch (8-byte length + JSON)."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100 << 20:
                raise ValueError("header too large")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(f"{path} is not a readable safetensors file: {exc}") from exc
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def file_digest(path: Path) -> str:
    """Content identity of one weights file.

    A hub cache snapshot links to blobs named by their LFS sha256, which is free and exact. Other files up to
    1 GiB are hashed in full with blake2b (~0.15 s for MiniLM's 90 MB); larger ones by size, mtime and sampled MBs.
    """
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if target.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{40,64}", target.name):
            return target.name
    path = Path(os.path.realpath(path))
    st = path.stat()
    if st.st_size < _REMEMBER_FROM:
        return _hash_file(path, st.st_size)
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    known = _digest_cache().get(str(path))
    if known and known[:4] == stamp:
        return known[4]
    value = _hash_file(path, st.st_size)
    _remember_digest(str(path), stamp + [value])
    return value


def _hash_file(path: Path, size: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
        else:
            digest.update(f"{size}:{path.stat().st_mtime_ns}".encode())
            for k in range(17):
                fh.seek(min(size - _SAMPLE, (size - _SAMPLE) * k // 16))
                digest.update(fh.read(_SAMPLE))
    return digest.hexdigest()


# Digests of large weight files by (size, mtime, ctime, inode), so a cold start does not re-read 90 MB to name its model
# (a changed file has a new stamp; the same rule git's index uses). Kept in $SG_CACHE_DIR/digests.json.
_DIGESTS: dict | None = None


def _digest_cache_path() -> Path:
    return Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "digests.json"


def _digest_cache() -> dict:
    global _DIGESTS
    if _DIGESTS is None:
        try:
            data = json.loads(_digest_cache_path().read_text(encoding="utf-8"))
            _DIGESTS = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _DIGESTS = {}
    return _DIGESTS


def _remember_digest(key: str, entry: list) -> None:
    cache = _digest_cache()
    cache[key] = entry
    path = _digest_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half of one
    except OSError:
        pass  # a read-only cache only costs the hashing next time


def files_digest(paths: list[Path], salt: str = "") -> str:
    """Short combined hash of several files (weights, dense layers, adapter) plus a recipe salt."""
    digest = hashlib.blake2b(digest_size=6)
    digest.update(salt.encode())
    for p in paths:
        digest.update(p.name.encode())
        digest.update(file_digest(p).encode())
    return digest.hexdigest()


def noncommercial_licence(name: str, directory: Path | None) -> str | None:
    """The non-commercial licence of a model, from the known list or its model card front matter."""
    if name in NONCOMMERCIAL_MODELS:
        return NONCOMMERCIAL_MODELS[name]
    if directory is not None and (directory / "README.md").is_file():
        try:
            head = (directory / "README.md").read_text(encoding="utf-8", errors="replace")[:4000]
        except OSError:
            return None
        if head.startswith("---"):
            front = head.split("---", 2)[1] if head.count("---") >= 2 else head
            m = _NC_LICENSE.search(front)
            if m:
                return m.group(1).upper()
    return None


def needs_remote_code(config: dict) -> bool:
    """A config with auto_map asks transformers to import Python shipped with (or referenced by) the model."""
    return bool(config.get("auto_map"))


_TRY_BLOCK = re.compile(r"\s*try\s*:.*?except.*?:", re.DOTALL)
_IMPORT = re.compile(r"^(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)


def check_remote_code(name: str, directory: Path, config: dict) -> None:
    """Before any load: the code an auto_map names must be on disk (offline) and its imports installed.

    "repo--module.Class" entries live in another hub repo, which must be in the local cache as well. Imports
    inside try/except are optional, as transformers treats them.
    """
    import importlib.util
    import sys

    seen: set[Path] = set()
    for ref in (config.get("auto_map") or {}).values():
        ref = ref[0] if isinstance(ref, list) else ref
        if not isinstance(ref, str) or "." not in ref:
            continue
        repo, _, local = ref.rpartition("--")
        module = local.rsplit(".", 1)[0]
        if repo:
            try:
                base = locate(repo)
            except ModelError as exc:
                raise ModelError(f"{name} runs code from {repo}, which is not in the local Hugging Face cache "
                                 f"({display_cache_dir()}; `sg models pull {name} --trust-remote-code` fetches "
                                 "both)") from exc
        else:
            base = directory
        path = base / (module.replace(".", "/") + ".py")
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            raise ModelError(f"{name}: its code {path.name} is missing from {base}")
        source = _TRY_BLOCK.sub("\n", path.read_text(encoding="utf-8", errors="replace"))
        missing = sorted({m for m in _IMPORT.findall(source)
                          if m not in sys.builtin_module_names and importlib.util.find_spec(m) is None})
        if missing:
            raise ModelError(f"{name}: its code needs {', '.join(missing)}, not installed "
                             f"(pip install {' '.join(missing)})")


def check_opt_ins(name: str, directory: Path | None, config: dict, *, trust_remote_code: bool,
                  allow_noncommercial: bool, remote_code: bool | None = None) -> None:
    """Raise ModelError naming exactly the settings a model needs and the user has not turned on."""
    missing = []
    reasons = []
    if remote_code is None:
        remote_code = needs_remote_code(config)
    if remote_code and not trust_remote_code:
        missing.append("models.trust_remote_code = true")
        reasons.append("it runs Python code shipped with the model")
    licence = noncommercial_licence(name, directory)
    if licence and not allow_noncommercial:
        missing.append("models.allow_noncommercial = true")
        reasons.append(f"its licence is {licence} (non-commercial use only)")
    if missing:
        raise ModelError(f"{name} needs {' and '.join(missing)} in .sg.toml: {'; '.join(reasons)}")
