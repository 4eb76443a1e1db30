"""Shared fixtures: paths to the shared bench data (skipping with a reason when absent) and thread limits."""

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


def pytest_sessionfinish(session, exitstatus):
    # A run that executed no test must never look green.
    if exitstatus == 0 and session.testscollected == 0:
        session.exitstatus = 5
