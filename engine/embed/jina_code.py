"""Jina-Code-v2 (jinaai/jina-embeddings-v2-base-code): JinaBERT with ALiBi (remote code), mean pooling, 768-d.

Its modeling code lives in another hub repo named by config.json's auto_map, so it needs
models.trust_remote_code = true and that repo in the local cache too. Licence: Apache-2.0.
"""

from __future__ import annotations

from pathlib import Path

from . import files
from .sentence import recipe_from_dir
from .transformer import Recipe

NAME = "jinaai/jina-embeddings-v2-base-code"


def looks_like(name: str, config: dict) -> bool:
    return "jina-embeddings-v2" in name or "JinaBert" in str(config.get("auto_map", ""))


def recipe(directory: Path, name: str = NAME, *, trust_remote_code: bool = False) -> Recipe:
    config = files.read_json(directory / "config.json")
    # the checkpoint cannot run without its code, even if a config were missing auto_map
    files.check_opt_ins(name, directory, config, trust_remote_code=trust_remote_code, allow_noncommercial=False,
                        remote_code=True)
    # mean pooling: from its sentence-transformers files if present, else the plain-encoder default
    return recipe_from_dir(directory, name, trust_remote_code=True, family="jina-code")
