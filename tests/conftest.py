"""Shared fixtures (the shared bench data, skipping with a reason when absent; dropping root for EACCES tests) and the
test tiers: tests/unit (pure pieces, seconds), tests/integration (the engine with tiny or real models, the CLI),
tests/e2e (real server processes, editors). Each test is marked with its tier; e2e and the model-heavy
integration modules are also `slow`, so `pytest -m "not slow"` is the fast loop."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tuned models and eval indexes made by tests (and by the servers they start) go to a temp dir, not the user cache.
os.environ.setdefault("SG_CACHE_DIR", tempfile.mkdtemp(prefix="sg-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
BENCH = (REPO.parent / "shared" / "bench").resolve()


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    if not BENCH.is_dir():
        pytest.skip(f"shared bench data not found at {BENCH}")
    return BENCH


@pytest.fixture
def unprivileged():
    """A context manager for a block that must meet real EACCES: as root (the CI case) it runs with the effective
    uid dropped to `nobody`, because root ignores file modes; otherwise as is. Skips when root cannot drop."""
    @contextlib.contextmanager
    def drop():
        if os.geteuid() != 0:
            yield
            return
        try:
            os.seteuid(65534)
        except OSError as exc:
            pytest.skip(f"running as root and cannot drop privileges to test EACCES: {exc}")
        try:
            yield
        finally:
            os.seteuid(0)
    return drop


TIERS = ("unit", "integration", "e2e")
SLOW_MODULES = {"test_ann_exact", "test_engine_models", "test_embed", "test_tune", "test_onnx", "test_pylate", "test_pull", "test_qdrant"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        tier = path.parent.name
        if tier in TIERS:
            item.add_marker(tier)
        if tier == "e2e" or path.stem in SLOW_MODULES:
            item.add_marker("slow")


def pytest_sessionfinish(session, exitstatus):
    # A run that executed no test must never look green.
    if exitstatus == 0 and session.testscollected == 0:
        session.exitstatus = 5
