"""`sg models pull ID [--revision REV]`: download a model into the Hugging Face cache, after checking its opt-ins.

The only place sg goes online. Before any weight is fetched it reads the hub's model info (licence, tags) and
the model's small config.json / README.md card, and refuses with one line when the model runs remote code or
has a non-commercial licence and the matching setting (models.trust_remote_code, models.allow_noncommercial)
is off. Then `snapshot_download` fetches only the files sg reads (weights, configs, tokenizer, the Dense
projections of sentence-transformers / PyLate layouts), with huggingface_hub's progress bar. A connection that
drops mid-file is resumed with a Range request (huggingface_hub retries while bytes keep arriving); if the pull
still fails, the files it finished stay in the cache and the next pull fetches only the rest (huggingface_hub
>= 2 discards the partial file of the one it was on). A failed pull leaves no snapshot that sg would pick up:
the revision's ref is put back as it was, so `files.locate` still says the model is not in the cache.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import sys
import tempfile
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from ..errors import ModelError
from . import files

# What sg reads from a model repo (see files.weight_files, sentence.py, colbert.py, pylate.py, xtr.py).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "README.md", "artifact.metadata"]
# torch .bin weights only in folders without safetensors (sg loads them with weights_only=True), e.g. a Dense
# module's pytorch_model.bin next to a safetensors backbone
_BIN = re.compile(r"(?:.*/)?pytorch_model(?:-\d+-of-\d+)?\.bin")
# remote code, only when the model needs it and the user trusts it
CODE_PATTERNS = ["*.py"]

_NC = re.compile(r"\bcc-by-nc|\bnon-?commercial", re.IGNORECASE)
EXIT_FAILED = 2


def command(name: str) -> str:
    """The exact command that puts `name` in the local cache (for "not in the local cache" messages)."""
    return f"sg models pull {name}"


class PullError(ModelError):
    """A pull that cannot go ahead or did not finish; the message is one line for the user."""


@dataclass
class Remote:
    """What the hub says about a model before anything big is downloaded."""

    repo_id: str
    revision: str
    sha: str
    files: list[str]
    licence: str | None
    remote_code: bool
    code_repos: list[str] = field(default_factory=list)  # other repos an auto_map points into


def add_pull_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_id", metavar="ID", help="hub model id, e.g. lightonai/LateOn-Code-edge")
    p.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    p.add_argument("--root", default=".", help="workspace whose .sg.toml holds the opt-ins (default: .)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model that runs its own code (same as models.trust_remote_code = true)")
    p.add_argument("--allow-noncommercial", action="store_true",
                   help="allow a non-commercial licence (same as models.allow_noncommercial = true)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_pull(args: argparse.Namespace) -> int:
    """`sg models pull`: 0 when the model is in the cache and readable by sg, 2 with one line on stderr if not."""
    from ..settings import load_settings

    problems: list[str] = []
    overrides: dict = {}
    if args.trust_remote_code:
        overrides["trust_remote_code"] = True
    if args.allow_noncommercial:
        overrides["allow_noncommercial"] = True
    root = Path(args.root)
    try:
        settings = load_settings(root if root.is_dir() else None, {"models": overrides} if overrides else None,
                                 problems)
    except Exception as exc:  # ConfigError: an out-of-range value in .sg.toml
        print(f"sg: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for p in problems:
        print(f"sg: warning: {p}", file=sys.stderr)
    try:
        path = pull(args.model_id, args.revision, trust_remote_code=settings.models.trust_remote_code,
                    allow_noncommercial=settings.models.allow_noncommercial, progress=not args.quiet)
    except PullError as exc:
        print(f"sg: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"sg: interrupted; run `{command(args.model_id)}` again to finish", file=sys.stderr)
        return 130
    print(f"{args.model_id}: in the local Hugging Face cache at {path}")
    print(_next_step(args.model_id, args.revision, path, settings))
    return 0


def main(argv: list[str]) -> int:
    """Entry point for `sg models pull ...` (engine/cli.py hands the arguments after `models pull` here)."""
    ap = argparse.ArgumentParser(prog="sg models pull",
                                 description="Download a model into the Hugging Face cache (the only online step).")
    add_pull_arguments(ap)
    return run_pull(ap.parse_args(argv))


def pull(repo_id: str, revision: str = "main", *, trust_remote_code: bool = False,
         allow_noncommercial: bool = False, progress: bool = True, cache_dir: Path | None = None) -> Path:
    """Check the opt-ins, then download what sg reads of `repo_id`. Returns the snapshot directory."""
    cache = Path(cache_dir) if cache_dir is not None else files.hf_cache_dir()
    endpoint = _endpoint()
    remote = inspect(repo_id, revision, endpoint)
    check_opt_ins(remote, trust_remote_code=trust_remote_code, allow_noncommercial=allow_noncommercial)
    patterns = allow_patterns(remote.files, remote.remote_code)
    snapshot = _download(repo_id, revision, patterns, cache, endpoint, progress)
    for repo in remote.code_repos:  # e.g. jinaai/xlm-roberta-flash-implementation for Jina models
        _download(repo, "main", ["*.py", "*.json"], cache, endpoint, progress)
    return snapshot


def allow_patterns(repo_files: list[str], remote_code: bool) -> list[str]:
    patterns = list(ALLOW_PATTERNS)
    with_safetensors = {posixpath.dirname(f) for f in repo_files if f.endswith(".safetensors")}
    patterns += sorted(f for f in repo_files if _BIN.fullmatch(f) and posixpath.dirname(f) not in with_safetensors)
    if remote_code:
        patterns += CODE_PATTERNS
    return patterns


def inspect(repo_id: str, revision: str, endpoint: str) -> Remote:
    """Model info, config.json and the model card (small files, read into a temporary directory)."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=endpoint)
    try:
        info = api.model_info(repo_id, revision=revision)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise PullError(_why(exc, repo_id, revision, endpoint)) from exc
    names = [s.rfilename for s in (info.siblings or [])]
    sha = info.sha or revision
    config: dict = {}
    licence = None
    with tempfile.TemporaryDirectory(prefix="sg-pull-") as tmp:
        for fname in ("config.json", "README.md"):
            if fname not in names:
                continue
            try:
                hf_hub_download(repo_id, fname, revision=sha, local_dir=tmp, endpoint=endpoint)
            except Exception as exc:  # noqa: BLE001
                raise PullError(_why(exc, repo_id, revision, endpoint)) from exc
        config = files.read_json_opt(Path(tmp) / "config.json")
        licence = files.noncommercial_licence(repo_id, Path(tmp))
    card_licence = getattr(info.card_data, "license", None) if info.card_data is not None else None
    tag_licences = [t.split(":", 1)[1] for t in (info.tags or []) if t.startswith("license:")]
    for candidate in [card_licence, *tag_licences]:
        if licence is None and isinstance(candidate, str) and _NC.search(candidate):
            licence = candidate.upper()
    hub_config = info.config if isinstance(info.config, dict) else {}
    auto_map = dict(hub_config.get("auto_map") or {}) | dict(config.get("auto_map") or {})
    remote_code = bool(auto_map) or "custom_code" in (info.tags or [])
    code_repos = sorted({ref.rpartition("--")[0] for ref in _refs(auto_map) if "--" in ref} - {repo_id})
    return Remote(repo_id, revision, sha, names, licence, remote_code, code_repos)


def check_opt_ins(remote: Remote, *, trust_remote_code: bool, allow_noncommercial: bool) -> None:
    """Refuse, naming every missing setting in one line, before anything big is downloaded."""
    missing, reasons = [], []
    if remote.remote_code and not trust_remote_code:
        missing.append("models.trust_remote_code = true")
        reasons.append("it runs Python code shipped with the model")
    if remote.licence and not allow_noncommercial:
        missing.append("models.allow_noncommercial = true")
        reasons.append(f"its licence is {remote.licence}, non-commercial use only")
    if missing:
        raise PullError(f"not downloading {remote.repo_id}: it needs {' and '.join(missing)} in .sg.toml "
                        f"({'; '.join(reasons)})")


def _download(repo_id: str, revision: str, patterns: list[str], cache: Path, endpoint: str,
              progress: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    storage = cache / ("models--" + repo_id.replace("/", "--"))
    ref = storage / "refs" / revision
    before = ref.read_text() if ref.is_file() else None
    from huggingface_hub.utils import logging as hf_logging

    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its retry warnings would bury the one line sg prints
    try:
        path = Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache), allow_patterns=patterns,
                                      endpoint=endpoint))
    except BaseException as exc:
        _restore_ref(ref, before)  # a half-fetched snapshot must not look like a model to sg
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise PullError(f"download of {repo_id} did not finish ({_why(exc, repo_id, revision, endpoint)}); "
                        f"run `{command(repo_id)}` again to finish it") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if not progress and not was_disabled:
            enable_progress_bars()
    _trim_tree_cache(storage, path.name, patterns)
    return path


def _restore_ref(ref: Path, before: str | None) -> None:
    try:
        if before is None:
            ref.unlink(missing_ok=True)
        else:
            ref.write_text(before)
    except OSError:
        pass


def _trim_tree_cache(storage: Path, commit: str, patterns: list[str]) -> None:
    """huggingface_hub >= 2 records the repo's full file list and treats a snapshot missing any of them as
    incomplete, which would hide a model pulled with allow-patterns from sg's offline lookup: keep only the
    files sg asked for, so the completeness check still guards exactly those."""
    try:
        from huggingface_hub._tree_cache import read_tree_cache, write_tree_cache
    except ImportError:  # older huggingface_hub: no tree cache, nothing to do
        return
    entries = read_tree_cache(str(storage), commit)
    if not entries:
        return
    kept = {p: e for p, e in entries.items() if any(fnmatch(p, pat) for pat in patterns)}
    if len(kept) != len(entries):
        write_tree_cache(str(storage), commit, kept)


def _refs(auto_map: dict) -> list[str]:
    out = []
    for value in auto_map.values():
        for ref in (value if isinstance(value, list) else [value]):
            if isinstance(ref, str):
                out.append(ref)
    return out


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _why(exc: BaseException, repo_id: str, revision: str, endpoint: str) -> str:
    """One line for a hub failure: the repo, the revision, the network, or access."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return f"{repo_id} is gated on the hub: accept its terms there and log in (`hf auth login`)"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on {endpoint}"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return f"{repo_id} is not a model on {endpoint} (or it is private: log in with `hf auth login`)"
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 6:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {type(e).__name__ for e in chain}
    if names & {"RemoteProtocolError", "ReadError", "ReadTimeout"}:
        return f"the connection to {endpoint} dropped: {_first_line(chain[-1])}"
    if any(isinstance(e, (ConnectionError, TimeoutError)) for e in chain) or \
            names & {"ConnectError", "ConnectTimeout", "OfflineModeIsEnabled", "NetworkError"}:
        return f"cannot reach the Hugging Face hub at {endpoint}: {_first_line(chain[-1])}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _next_step(repo_id: str, revision: str, path: Path, settings) -> str:
    """Say whether sg will use the model now, and if not, which setting makes it."""
    m = settings.models
    routes = [r for r in ("code", "prose", "cjk") if getattr(m, r) == repo_id]
    if revision != "main":
        return (f"sg reads the main revision of hub ids; to use revision {revision}, set "
                f"models.code = \"{path}\" in .sg.toml")
    if routes:
        return f"it serves the {' and '.join(routes)} route{'s' if len(routes) > 1 else ''}; " \
               "`sg models` shows it and the next `sg index` embeds with it"
    return f"to use it, set models.code = \"{repo_id}\" (or models.prose) in .sg.toml; " \
           "then `sg models` shows it and the next `sg index` embeds with it"


pull_main = main  # the name engine exports for `sg models pull`
