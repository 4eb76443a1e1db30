"""The document-student recipe (tools/doc_student.py) never trains on what the dev sets are made of."""

from __future__ import annotations

from pathlib import Path

from tools.doc_student import ROOT, _third_party, evaluated_names


def test_the_dev_sets_code_and_this_repository_are_never_read(tmp_path: Path) -> None:
    skip = evaluated_names()
    assert {"click", "pytest", "_pytest"} <= skip
    site = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
    assert _third_party(site / "numpy" / "core", skip)
    assert _third_party(ROOT / "editors" / "vscode" / "node_modules" / "semver", skip)
    assert _third_party(tmp_path, skip)
    assert not _third_party(site / "click", skip)
    assert not _third_party(site / "_pytest" / "config", skip)
    assert not _third_party(ROOT / "engine", skip)
    assert not _third_party(ROOT.parent / "shared" / "bench" / "cosqa", skip)


def test_repo_search_repositories_count_as_evaluated_when_the_data_is_there() -> None:
    listing = ROOT.parent / "shared" / "bench" / "repo-search" / "repos.json"
    if listing.is_file():
        assert {"httpx", "starlette", "fastapi"} <= evaluated_names()
