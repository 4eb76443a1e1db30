"""The index backend interface: where the ranker gets its candidates and fusion inputs, and what the indexer tells
the backend after each committed batch. The ranker (engine/rank.py) fuses, boosts and assembles hits from what a
backend answers and never knows which backend runs; the embedded default is engine.backends.local.LocalBackend (the
SQLite store's BM25 and one hnswlib ANN per embedding space).

The SQLite store stays the single source of truth for files, chunks and vectors (the indexer writes it); a backend
is a searchable copy of it that the indexer keeps in step through the write side below. A second backend (Qdrant)
implements both Protocols; it may answer the scores differently only where its engine cannot do otherwise, and
says so in its own docs.

Keys: every chunk a backend returns is named by a key, opaque to the ranker (hashable, comparable for equality
only). LocalBackend uses the store's integer chunk ids; another backend may use its point ids. A key found in one
method of a View is valid in every other method of the same View.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

Key = Hashable
K = TypeVar("K", bound=Hashable)  # one backend's chunk key: a view takes back the keys it handed out
Columns = tuple[float, float, float]  # BM25 weights of the (path, symbol, body) columns


@runtime_checkable
class Row(Protocol):
    """One chunk as the ranker reads it (engine.store.ChunkRow satisfies it). Lines 1-based inclusive, columns
    in code points. `text` is "" when the row was read with text=False."""

    # read-only (properties), so frozen records such as ChunkRow satisfy it
    @property
    def path(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def start_line(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def start_col(self) -> int: ...
    @property
    def end_col(self) -> int: ...
    @property
    def text(self) -> str: ...


class View(Protocol[K]):
    """One consistent read of the index: every answer inside one `with backend.view() as v:` block comes from
    the same committed state (a save meanwhile cannot make a candidate vanish between scoring and reading its
    row). Views are used by one thread and live for one query."""

    def chunk_count(self) -> int:
        """How many chunks the index holds (N of BM25's IDF; the denominator of a space's coverage)."""

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each token (0 for unknown ones); the ranker drops common query words with it."""

    def lexical(self, tokens: Sequence[str], limit: int, cols: Columns,
                keys: Sequence[K] | None = None) -> dict[K, float]:
        """BM25 with FTS5's formula (k1 1.2, b 0.75) over the path, symbol and body columns weighted by `cols`:
        key -> positive score. Without `keys`, the best `limit` chunks (unordered); with `keys`, the exact score
        of each of those chunks that matches at all (`limit` ignored): the ranker's fill-in for candidates another
        component found. Empty `tokens` give {}."""

    def semantic(self, space: str, pooled: np.ndarray, limit: int,
                 tokens: np.ndarray | None = None) -> dict[K, float]:
        """Candidates of one embedding space: key -> similarity, at most `limit` of them (unordered).

        `pooled` is the query's unit-length vector (float32, the space's dim): candidates are the nearest pooled
        chunk vectors by cosine. For a multi-vector space `tokens` holds the query's token vectors (n x dim) and
        each candidate's score is the exact MaxSim of its stored token vectors divided by the query's token count
        (engine.score.maxsim_packed); a backend that cannot read a candidate's tokens answers its cosine instead.
        An empty space answers {}."""

    def semantic_fill(self, space: str, pooled: np.ndarray, keys: Sequence[K]) -> dict[K, float]:
        """The exact cosine of `pooled` with each of these chunks' pooled vectors (those that have one), so fusion
        never guesses a missing score. Multi-vector spaces answer {} (MaxSim off the candidate list would need the
        tokens of every chunk: those scores stay 0)."""

    def space_size(self, space: str) -> int:
        """How many chunks the space can rank (chunks with a vector in it)."""

    def rows(self, keys: Sequence[K], text: bool = False) -> dict[K, Row]:
        """The chunks behind these keys (keys no longer indexed are left out); with text=False the rows' text may
        be left empty: the ranker reads text only for the hits it returns."""


class Backend(Protocol):
    """A searchable index of one workspace's chunks, kept in step with the store by the indexer.

    Read side: `view(scope)`. Write side: the indexer calls the methods below after each committed store write,
    from one writer thread at a time; searches on other threads must keep answering meanwhile (a key deleted
    while a view reads it is answered or left out, never an error). `open_spaces` names the embedding spaces
    in use (engine.spaces.Space: name, embedder, routes, codec): the backend loads or builds what it keeps per
    space and forgets spaces not named; `drop_space` forgets one whose model failed.
    """

    def view(self, scope: Sequence[str] | None = None) -> AbstractContextManager[View[Any]]:
        """A consistent read. `scope` (workspace-relative globs, as Engine.search takes them) is a hint: a backend
        may restrict candidates to it; the ranker filters the rows it gets in any case."""

    def open_spaces(self, spaces: dict) -> None:
        """Use these spaces (name -> engine.spaces.Space), loading what the backend kept for them or building it
        from the store."""

    def drop_space(self, name: str) -> None:
        """Forget a space (its model failed to load)."""

    def chunks_changed(self, removed: Sequence[int], added: Sequence[int]) -> None:
        """After a committed batch of file writes (the store's chunk ids): `removed` chunks are gone, `added`
        chunks are new (their text, and their vectors if the store already has vectors for their content, are in
        the store now)."""

    def vectors_added(self, space: str, hashes: Sequence[str]) -> None:
        """After the store committed vectors for these chunk content hashes in `space`: every chunk with such a
        content hash becomes rankable there."""

    def save(self) -> None:
        """Persist derived state at the end of an index run (cheap when nothing changed)."""

    def vector_counts(self) -> dict[str, int]:
        """Space name -> how many chunks it can rank (for status())."""

    def check(self) -> list[str]:
        """Disagreements between this backend and the store (empty when healthy)."""

    def warm(self, wait: bool = False) -> None:
        """For long-lived processes: build whatever makes later searches faster (may work in the background)."""

    def close(self) -> None:
        """Persist what needs persisting and release files and connections."""
