"""The public-code recipe (tools/public_recipe.py): package list rules, leakage filters, data card. No network."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.tune.mine import MineStats
from tools.public_recipe import (ALLOWED_LICENSES, EVAL_LIBRARIES, PackageRecord, PackageSpec,
                                 PublicConfig, bench_prints, cap_per_package, check_packages, dedupe,
                                 extract_package, load_public_config, metadata_license, mine_package,
                                 normalize_name, skip_member, write_data_card)
from engine.tune.mine import Pair

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "train_public_code.yaml"

# -- the shipped package list --------------------------------------------------------------------------------


def test_shipped_config_is_pinned_permissive_and_free_of_eval_libraries():
    cfg = load_public_config(CONFIG)
    assert len(cfg.packages) >= 100
    names = {normalize_name(p.name) for p in cfg.packages}
    assert not names & {"click", "pytest", "rich", "networkx", "pip", "pipenv", "typer"}
    assert all(p.license in ALLOWED_LICENSES for p in cfg.packages)
    assert all(p.version[0].isdigit() for p in cfg.packages)
    assert cfg.lora.target_modules == ["query", "value"]


@pytest.mark.parametrize("name", ["click", "pytest", "Rich", "networkx", "pytest-cov", "rich-click", "_pytest"])
def test_eval_libraries_are_refused(name):
    with pytest.raises(ConfigError, match="evaluation library"):
        check_packages([PackageSpec(name, "1.0", "MIT")])


@pytest.mark.parametrize("spec,msg", [(PackageSpec("x", "1.0", "GPL-3.0"), "licence"),
                                      (PackageSpec("x", "", "MIT"), "pinned"),
                                      (PackageSpec("x", "latest", "MIT"), "pinned")])
def test_bad_package_entries_are_refused(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        check_packages([spec])


def test_duplicate_package_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        check_packages([PackageSpec("Foo_Bar", "1", "MIT"), PackageSpec("foo-bar", "2", "MIT")])


def test_string_entries_parse(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("packages:\n  - attrs==23.1.0 MIT\n  - {name: six, version: '1.16.0', license: MIT}\n"
                   "train: {batch_size: 8}\n")
    c = load_public_config(cfg)
    assert [(p.name, p.version) for p in c.packages] == [("attrs", "23.1.0"), ("six", "1.16.0")]
    assert c.train.batch_size == 8
    cfg.write_text("packages:\n  - attrs latest\n")
    with pytest.raises(ConfigError):
        load_public_config(cfg)


# -- archive members ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,why", [
    ("pkg/core.py", ""),
    ("pkg/README.md", "not python"),
    ("pip/_vendor/rich/console.py", "evaluation library"),
    ("pkg/_vendor/six.py", "vendored"),
    ("pkg/extern/thing.py", "vendored"),
    ("click/core.py", "evaluation library"),
    ("pkg/networkx/algo.py", "evaluation library"),
    ("_pytest/fixtures.py", "evaluation library"),
    ("pkg/rich.py", "evaluation library"),
    ("pkg/tests/test_core.py", "tests/docs/metadata"),
    ("pkg/test_core.py", "tests/docs/metadata"),
    ("pkg-1.0.dist-info/METADATA.py", "tests/docs/metadata"),
])
def test_skip_member(path, why):
    assert skip_member(path) == why


def test_every_eval_library_is_covered():
    assert {"click", "pytest", "rich", "networkx"} <= EVAL_LIBRARIES


@pytest.mark.parametrize("meta,lic", [
    ("Metadata-Version: 2.1\nName: a\nLicense-Expression: MIT\n", "MIT"),
    ("Metadata-Version: 2.1\nName: a\nClassifier: License :: OSI Approved :: BSD License\n", "BSD-3-Clause"),
    ("Metadata-Version: 2.1\nName: a\nLicense: Apache 2.0\n", "Apache-2.0"),
    ("Metadata-Version: 2.1\nName: a\nClassifier: License :: OSI Approved :: Python Software Foundation License\n",
     "PSF-2.0"),
    ("Metadata-Version: 2.1\nName: a\nLicense: UNKNOWN\n", ""),
])
def test_metadata_license(meta, lic):
    assert metadata_license(meta) == lic


# -- a tiny fake package ------------------------------------------------------------------------------------------

LEAKY = '''def leaky_function(items):
    """Return the first element of a list that is truthy."""
    for item in items:
        if item:
            return item
    return None
'''

PKG = '''"""A tiny package."""


def parse_config_file(path):
    """Read a configuration file and return its sections as a dictionary."""
    sections = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("["):
                name = line.strip("[]\\n")
                sections[name] = {}
    return sections


def format_byte_size(value, precision=1):
    """Turn a number of bytes into a short human readable size string."""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.{precision}f} {unit}"
        value /= 1024
    return f"{value:.{precision}f} TB"


def copied_docstring(a, b):
    """Compute the cosine similarity between two dense vectors of floats."""
    dot = sum(x * y for x, y in zip(a, b))
    return dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5))


''' + LEAKY


def _wheel(tmp_path: Path) -> Path:
    whl = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("fakepkg/__init__.py", "")
        z.writestr("fakepkg/util.py", PKG)
        z.writestr("fakepkg/_vendor/rich/console.py", "def print_rich_text(x):\n    '''Print rich text.'''\n    return x\n")
        z.writestr("fakepkg/tests/test_util.py", "def test_it():\n    assert True\n")
        z.writestr("fakepkg-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\nLicense-Expression: MIT\n")
    return whl


def _bench(tmp_path: Path) -> Path:
    bench = tmp_path / "bench" / "some-set" / "corpus"
    bench.mkdir(parents=True)
    # the same function as in the package, re-indented and re-spaced: still a leak
    (bench / "00001_leaky.py").write_text(LEAKY.replace("    ", "  ").replace("return None", "return   None"))
    # a different function whose docstring equals one in the package
    (bench / "00002_cos.py").write_text('def cos(u, v):\n    """Compute the cosine similarity between two dense '
                                        'vectors of floats."""\n    return 0.0\n')
    (bench / "00003_py2.py").write_text("print 'python 2 does not parse'\n")
    return tmp_path / "bench"


def test_extract_skips_vendored_tests_and_reads_licence(tmp_path):
    lic, skipped = extract_package(_wheel(tmp_path), tmp_path / "src")
    assert lic == "MIT"
    files = sorted(p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*.py"))
    assert files == ["fakepkg/__init__.py", "fakepkg/util.py"]
    assert skipped["evaluation library"] == 1 and skipped["tests/docs/metadata"] >= 1


def test_bench_prints_catch_reformatted_code_and_docstrings(tmp_path):
    prints = bench_prints(_bench(tmp_path), tmp_path / "prints.json")
    assert prints.files == 3
    assert prints.leaks_code(LEAKY)
    assert not prints.leaks_code(PKG.split("def format_byte_size")[0])
    assert prints.leaks_doc("Compute the cosine similarity between two dense vectors of floats.")
    assert prints.leaks_doc("compute the COSINE similarity between two dense vectors of floats")
    assert not prints.leaks_doc("Read a configuration file and return its sections as a dictionary.")
    again = bench_prints(tmp_path / "bench", tmp_path / "prints.json")  # from the cache file
    assert again.code == prints.code and again.docs == prints.docs


def test_mine_package_drops_leaks(tmp_path):
    extract_package(_wheel(tmp_path), tmp_path / "src")
    prints = bench_prints(_bench(tmp_path))
    cfg = PublicConfig()
    pairs, dropped = mine_package(tmp_path / "src", "fakepkg", cfg, prints, tmp_path / "idx", MineStats())
    queries = {p.query for p in pairs}
    assert "Read a configuration file and return its sections as a dictionary." in queries
    assert "Turn a number of bytes into a short human readable size string." in queries
    assert not any("cosine" in q.lower() for q in queries)
    assert not any("truthy" in q or "leaky" in q for q in queries)
    assert not any("leaky_function" in p.positive or "print_rich_text" in p.positive for p in pairs)
    assert dropped >= 2
    doc = next(p for p in pairs if p.query.startswith("Read a configuration"))
    # rendered as the engine embeds chunks, the docstring removed from the positive
    assert doc.positive.splitlines()[0] == "fakepkg util py | parse config file parse_config_file"
    assert "Read a configuration" not in doc.positive
    assert doc.key.startswith("fakepkg/")


def test_dedupe_and_cap():
    a = Pair("Read the file.", "hdr\ndef f(): pass", kind="doc", key="p1/x::f")
    b = Pair("read  the FILE", "hdr\ndef g(): pass", kind="doc", key="p2/x::g")
    c = Pair("Other query here.", "other hdr\ndef f():  pass", kind="doc", key="p2/y::f")
    d = Pair("name words", "hdr\ndef h(): pass", kind="name", key="p1/x::h")
    assert dedupe([a, b, c, d]) == [a, d]
    many = [Pair(f"q{i}", f"c{i}", kind="doc" if i % 2 else "name", key=f"big/x::f{i}") for i in range(30)]
    capped = cap_per_package(many + [a], 9, 0)
    assert sum(p.key.startswith("big/") for p in capped) == 9 and a in capped
    assert cap_per_package(many, 9, 0) == cap_per_package(many, 9, 0)  # deterministic


def test_data_card(tmp_path):
    recs = [PackageRecord("fakepkg", "1.0", "MIT", "MIT", "fakepkg-1.0-py3-none-any.whl", "ab" * 32, 2, 5, 1),
            PackageRecord("broken", "2.0", "BSD-3-Clause", "", "", "", error="pip could not download broken==2.0")]
    path = write_data_card(tmp_path / "DATA_CARD.md", recs, {"pairs": 5, "kinds": {"doc": 4, "name": 1}},
                           {"steps": 10})
    text = path.read_text()
    assert "| fakepkg | 1.0 | MIT / MIT |" in text
    assert "broken" in text and "could not download" in text
    assert "click" in text and "networkx" in text  # the leakage rules are stated
    assert "- steps: 10" in text


def test_web_query_rewrites_like_a_search_box():
    import random

    from tools.public_recipe import web_query, web_style

    assert "check if" in web_query("Return True if the path is a directory.", random.Random(0))
    assert web_query("Fetches the page.", random.Random(0)).split()[0] in ("fetch", "python", "how")
    for seed in range(20):
        q = web_query("Parses a date string formatted like YYYY-MM-DD.", random.Random(seed))
        assert q == q.lower() and not q.endswith(".") and "parse" in q.split()[:3] + q.split()[-3:]
        assert len(q.split()) <= 14
    assert "azuremaps" in web_query("AzureMaps geocoder based on TomTom.", random.Random(1))  # a name, not a verb
    pairs = [Pair(f"Compute the checksum of block {i}.", "def f(): pass", key=f"k{i}") for i in range(50)]
    a, b = web_style(pairs, 0.5, seed=0), web_style(pairs, 0.5, seed=0)
    assert [p.query for p in a] == [p.query for p in b]  # deterministic for a seed
    changed = sum(p.query != q.query for p, q in zip(a, pairs))
    assert 10 < changed < 40 and web_style(pairs, 0.0, seed=0) == pairs


def test_shipped_adapter_matches_its_recipe_and_data_card():
    """The adapter in the repository is the recipe's output: small safetensors, strength and rank as configured,
    a data card naming every pinned package, and the offline default serves it unless turned off."""
    import json

    from engine.embed.sentence import ADAPTER_DIR, default_recipe

    cfg = load_public_config(CONFIG)
    weights = ADAPTER_DIR / "adapter_model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 5 << 20
    ac = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
    assert ac["r"] == cfg.lora.r and ac["lora_alpha"] == cfg.lora.alpha * cfg.ship_scale
    assert sorted(ac["target_modules"]) == sorted(cfg.lora.target_modules)
    card = (ADAPTER_DIR / "DATA_CARD.md").read_text()
    for p in cfg.packages:
        assert f"| {p.name} | {p.version} | {p.license} /" in card
    assert "click, networkx, pytest, rich" in card
    assert default_recipe(True).adapter == ADAPTER_DIR and default_recipe(False).adapter is None
