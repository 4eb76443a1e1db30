"""Embedding spaces: one per model, with the routes it serves and its token codec, pinned in the store. What a
backend keeps per space to find candidates (the local backend's ANN, a Qdrant named vector) is the backend's."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .codec import Codec, get_codec
from .embed.base import ROUTES, Embedder
from .settings import IndexSettings
from .store import Store


@dataclass
class Space:
    """An embedding space: one model, the routes it serves, and its token codec; all every backend needs."""

    name: str
    embedder: Embedder
    routes: list[str]
    codec: Codec | None  # token codec of a multi-vector space


def space_name(ident: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", ident.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.blake2b(ident.encode(), digest_size=4).hexdigest()}"


def make_spaces(store: Store, embedders: dict[str, Embedder | None], settings: IndexSettings) -> dict[str, Space]:
    """One space per distinct model among the routes' embedders, pinned in the store (a space that held another
    model's vectors is emptied). Multi-vector spaces get their token codec; a PQ codec's codebook is trained on
    the first batch embedded and kept in the store."""
    by_ident: dict[str, Space] = {}
    for r in ROUTES:
        emb = embedders.get(r)
        if emb is None:
            continue
        if emb.ident not in by_ident:
            codec_name = settings.token_codec if emb.multi_vector else "fp32"
            name = space_name(emb.ident)
            store.ensure_space(name, emb.ident, emb.dim, emb.multi_vector, codec_name)
            codec = None
            if emb.multi_vector and codec_name != "pq":
                codec = get_codec(codec_name)
            elif emb.multi_vector:
                book = store.spaces()[name]["codebook"]
                codec = get_codec("pq", codebook=book) if book else None
            by_ident[emb.ident] = Space(name, emb, [], codec)
        by_ident[emb.ident].routes.append(r)
    return {s.name: s for s in by_ident.values()}
