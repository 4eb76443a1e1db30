"""Installed distributions' versions, read without importing them (cache keys and index sidecars name them)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache  # a process does not change its installed packages; cache keys ask several times
def dist_version(dist: str) -> str:
    """An installed distribution's version from its dist-info directory name, without importlib.metadata
    (which imports the email package: ~0.1 s of a cold start); "none" when it is not installed."""
    spec = importlib.util.find_spec(dist)
    if spec is None:
        return "none"
    where = next(iter(spec.submodule_search_locations or []), None) or spec.origin
    site = Path(where or ".").parent
    found = sorted(site.glob(f"{dist}-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len(dist) + 1:-len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"
