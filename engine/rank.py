"""The ranker: from a query's route weights and the candidates a backend (engine.backends.base) answers, fused and
boosted hits. Steps, each its own function: the query's intent (engine.navigate), weight allocation, candidate
gathering (BM25, each space, by name; the fill-in that gives every candidate every component's score), fusion,
boosts (name, test demotion for find-similar), the navigation steps (engine.navigate) and hit assembly."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from . import navigate, score, tokenize
from .backends.base import Backend, Row, View
from .errors import ModelError
from .records import Hit
from .settings import SearchSettings
from .spaces import Space

NAVIGATE_TEXTS = 60  # candidates whose text the definition check reads (best fused first)
NAMED_CANDIDATES = 60  # chunks fetched by name (symbol column) and by path words, per name
PRUNE_FROM_CHUNKS = 200  # below this, one chunk is too big a share to call a word common: BM25 keeps every word
POSTING_BUDGET = 0.5  # a search query's kept BM25 words may together fill at most this share of the chunks


@dataclass
class Query:
    """What the ranker ranks for: the text (embedded by each space), its BM25 tokens, its route weights."""

    text: str
    tokens: list[str]
    weights: dict[str, float]
    mode: str
    k: int
    paths: list[str] | None = None  # workspace-relative globs (engine.multi.scope_patterns)
    doc_query: bool = False  # a code snippet (find-similar): embedded as a document, no name boost or posting budget
    name_boost: bool = True
    intent: navigate.Intent | None = None  # search queries: what the query asks for (None for find-similar)


@dataclass
class Ranker:
    """The parts a ranking needs: the backend, the spaces in use, the search settings, and how to embed a query
    in a space (`encode`; raises ModelError) and to give up a space whose model failed (`drop`)."""

    backend: Backend
    spaces: dict[str, Space]
    settings: SearchSettings
    encode: Callable[[Space, str, bool], np.ndarray]
    drop: Callable[[Space, Exception], None]

    def rank(self, q: Query) -> tuple[list[Hit], list[str], list[str]]:
        """The top q.k hits (deduplicated), notes on anything that degraded the ranking, and the tiers that served
        them ("lexical", "semantic")."""
        notes: list[str] = []
        if q.intent is None and not q.doc_query and self.settings.navigate:
            q.intent = navigate.read_intent(q.text)
        space_w, unserved, mode = allocate_weights(q.weights, self.spaces, q.mode, notes)
        with self.backend.view(q.paths) as v:
            components, comp_weights, by_name = self.gather(v, q, mode, space_w, unserved, notes)
            rows = v.rows(list(set().union(*components.values())) if components else [], text=False)
            # everything below reads inside the same view: a save meanwhile cannot empty a snippet
            if q.paths:
                rows = {key: r for key, r in rows.items() if path_ok(r.path, q.paths)}
            if not rows:
                return [], notes, []
            for comp in components.values():
                for key in list(comp):
                    if key not in rows:
                        del comp[key]
            # A component with no candidates (e.g. a space with no vectors in this corpus) must not dilute others.
            components = {name: c for name, c in components.items() if c}
            tiers = sorted({"semantic" if name.startswith("sem:") else name for name in components})
            # The lexical tier alone (models off or still loading) ranks by its ranks: raw BM25 spreads the pool so
            # far that the navigation boosts, sized as shares of the best score, would barely move it. Not for
            # CJK text, where no path or definition boost applies and ranks would only lose BM25's margins.
            alone = q.intent is not None and list(components) == ["lexical"] and q.weights.get("cjk", 0.0) < 0.5
            if self.settings.fusion == "rrf" or alone:
                fused = score.fuse_rrf(components, comp_weights, k=self.settings.rrf_k)
            else:
                fused = score.fuse_linear(components, comp_weights)
            scored = boost(fused, rows, q, self.settings)
            if q.intent is not None:
                # the definition check reads the text of the candidates that can still reach the top
                near = sorted(scored, key=lambda c: -scored[c][0])[:NAVIGATE_TEXTS]
                if q.intent.names:
                    near += [c for c in by_name if c in rows and c not in near]
                texts = {key: r.text for key, r in v.rows(near, text=True).items()}
                s = self.settings
                sizes = navigate.Sizes(definition=s.definition_boost, path=s.path_boost, file=s.file_boost,
                                       saturation=s.diversity)
                scored = navigate.rerank(scored, rows, texts, q.intent, sizes)
            hits = score.dedupe(assemble_hits(rows, scored))
            diverse = q.intent is not None and q.intent.kind != "behaviour"
            top = navigate.diversify(hits, q.k, self.settings.diversity) if diverse else hits[:q.k]
            full = v.rows([h.chunk_id for h in top], text=True)  # the state the ranking saw
            for hit in top:
                if hit.chunk_id in full:
                    hit.snippet = snippet(full[hit.chunk_id])
            return top, notes, tiers

    def gather(self, v: View, q: Query, mode: str, space_w: dict[str, float], unserved: float,
               notes: list[str]) -> tuple[dict[str, dict[Hashable, float]], dict[str, float], list[Hashable]]:
        """Each component's candidates and weight: BM25 (common words left out) and each weighted space, and the
        candidates found by name (named_candidates); then, when there are several components or candidates by
        name, every candidate's exact score in each (fill_in)."""
        s = self.settings
        n_cand = max(s.candidates, q.k * 3) * (4 if q.paths else 1)
        components: dict[str, dict[Hashable, float]] = {}
        comp_weights: dict[str, float] = {}
        pooled: dict[str, np.ndarray] = {}
        # Path and symbol columns carry identifiers: they help code queries and only add noise to CJK prose.
        cjk = q.weights.get("cjk", 0.0)
        cols = (1.0 - cjk, 2.0 * (1.0 - cjk), 1.0)
        lw = s.similar_lexical_weight if q.doc_query else \
            s.symbol_lexical_weight if q.intent is not None and q.intent.kind == "symbol" else s.lexical_weight
        words = navigate.content_tokens(q.tokens) if q.intent is not None and q.intent.kind != "symbol" else q.tokens
        lex_tokens = prune_common(words, v, s.max_token_share, budget=not q.doc_query) \
            if mode != "semantic" else words
        # by name first: the main BM25 query below is the one whose scores the backend keeps for fill-in
        by_name = self.named_candidates(v, q) if q.intent is not None else []
        if mode in ("hybrid", "lexical"):
            components["lexical"] = v.lexical(lex_tokens, n_cand, cols)
            comp_weights["lexical"] = 1.0 if mode == "lexical" else lw + (1 - lw) * unserved
        if mode in ("hybrid", "semantic"):
            for name, w in space_w.items():
                if w <= 0:
                    continue
                sp = self.spaces[name]
                try:
                    out = self.encode(sp, q.text, q.doc_query)
                except ModelError as exc:
                    self.drop(sp, exc)
                    notes.append(f"{sp.embedder.name} failed to load: lexical results for its routes")
                    comp_weights["lexical"] = comp_weights.get("lexical", 0.0) + w
                    continue
                tokens = out if sp.embedder.multi_vector else None
                pooled[name] = score.pool(out) if tokens is not None else np.asarray(out, np.float32)
                sims = v.semantic(name, pooled[name], n_cand, tokens)
                if sims:
                    # A space that holds only a sliver of the corpus (an English LICENSE in a Japanese doc set)
                    # would otherwise crown its few members: weigh it by the share of chunks it can rank.
                    coverage = min(1.0, v.space_size(name) / max(v.chunk_count(), 1)) if mode == "hybrid" else 1.0
                    components[f"sem:{sp.embedder.name}"] = sims
                    comp_weights[f"sem:{sp.embedder.name}"] = w * (1 - lw if mode == "hybrid" else 1) * coverage
        if len(components) > 1 or by_name:
            # found by name or path only: every component scores them too, so they can be fused
            self.fill_in(v, components, lex_tokens, cols, pooled, by_name)
        return components, comp_weights, by_name

    def named_candidates(self, v: View, q: Query) -> list[Hashable]:
        """Chunks whose symbol holds a name the query asks for, and chunks of files whose path holds the query's
        words: BM25 over the symbol column or the path column alone. A definition or a file named like the query
        can then be ranked even when its body never uses the query's words."""
        it = q.intent
        assert it is not None
        out: dict[Hashable, float] = {}
        for name in it.names:
            out.update(v.lexical(tokenize.tokenize_symbol(name), NAMED_CANDIDATES, (0.0, 1.0, 0.0)))
        if it.kind == "topic" and it.words:
            out.update(v.lexical(list(it.words), NAMED_CANDIDATES, (1.0, 0.0, 0.0)))
        return list(out)

    def fill_in(self, v: View, components: dict[str, dict[Hashable, float]], tokens: list[str],
                cols: tuple[float, float, float], pooled: dict[str, np.ndarray], extra: list[Hashable]) -> None:
        """Give every candidate (and the `extra` ones) its exact score in every component, so fusion never
        guesses a missing one; a candidate a component cannot score gets 0 there."""
        cand = set().union(*components.values(), extra)
        for key, comp in components.items():
            missing = [i for i in cand if i not in comp]
            if not missing:
                continue
            if key == "lexical":
                comp.update(v.lexical(tokens, 0, cols, keys=missing))
            else:
                name = next(s.name for s in self.spaces.values() if f"sem:{s.embedder.name}" == key)
                comp.update(v.semantic_fill(name, pooled[name], missing))
            for found in extra:
                comp.setdefault(found, 0.0)


def allocate_weights(weights: dict[str, float], spaces: dict[str, Space], mode: str,
                     notes: list[str]) -> tuple[dict[str, float], float, str]:
    """(semantic weight per space, the weight of the query's own route when no model serves it, the mode the
    ranking can run in).

    A space's weight is the query's route weights for the routes it serves. A route without a model goes to BM25
    when the query reads as that route (Japanese with no CJK model); the small cross-language weight an English
    query gives the cjk route is dropped instead: BM25 cannot reach Japanese text with English words, and that
    weight would nearly double BM25's share of every English query."""
    space_w: dict[str, float] = {}
    unserved = dropped = 0.0
    own = max(weights, key=weights.__getitem__) if weights else None
    for r, w in weights.items():
        sp = next((x for x in spaces.values() if r in x.routes), None)
        if sp is None and r == own:
            unserved += w
        elif sp is None:
            dropped += w
        else:
            space_w[sp.name] = space_w.get(sp.name, 0.0) + w
    if 0 < dropped < 1:
        space_w = {name: w / (1 - dropped) for name, w in space_w.items()}
    if mode != "lexical" and not spaces:
        notes.append("no embedding model is available: lexical results only")
        mode = "lexical"
    elif mode == "semantic" and unserved >= 0.999:
        notes.append("no model can read this query's language: lexical results only")
        mode = "lexical"
    return space_w, unserved, mode


def prune_common(tokens: list[str], v: View, share: float, budget: bool = True) -> list[str]:
    """On an index of PRUNE_FROM_CHUNKS chunks or more, leave out of BM25 the query words found in more than
    `share` (search.max_token_share) of the chunks and (search queries, not code snippets) the commonest words
    beyond a total of POSTING_BUDGET x chunks; the two rarest words always stay, and CJK words are never left out.

    Common words carry little IDF (log 3 at a quarter of the chunks) but add up: in a docstring-sentence query,
    "the", "value", "return" outvote the one rare word that names the function. Japanese particles and bigrams
    are common and still help, so CJK words stay. Posting lists are also most of BM25's time on a large index.
    On find-similar (clones) the budget costs quality: not used there. The figures behind these choices:
    `python bench/quality.py` (dev sets, with and without) and `python bench/speed.py` (time per query)."""
    n = v.chunk_count()
    latin = [t for t in tokens if not tokenize.has_cjk(t)]  # the words that may leave
    if n < PRUNE_FROM_CHUNKS or len(latin) <= 2 or share >= 1.0:
        return tokens
    df = v.doc_freqs(latin)
    kept, volume = set(), 0
    for i, t in enumerate(sorted(latin, key=df.__getitem__)):  # rarest first, within the posting budget
        if i >= 2 and (df[t] > share * n or (budget and volume + df[t] > POSTING_BUDGET * n)):
            break
        kept.add(t)
        volume += df[t]
    return [t for t in tokens if t in kept or t not in latin]


def boost(fused: dict, rows: dict[Hashable, Row], q: Query,
          s: SearchSettings) -> dict[Hashable, tuple[float, dict[str, float]]]:
    """Each fused candidate's final score and its parts: the name boost (query words in the chunk's name) for
    the candidates that could reach the top k with it, and a demotion for test code unless the query asks for
    tests."""
    wants_tests = score.query_mentions_tests(q.text) if not q.doc_query else True
    terms = score.name_terms(q.tokens) if q.name_boost and s.name_boost > 0 else ()
    demote = s.demote_tests and not wants_tests and q.intent is None  # with an intent: navigate's priors
    factor = {key: 0.9 if demote and score.is_test_path(rows[key].path, rows[key].symbol) else 1.0
              for key in fused if key in rows}
    # The name boost adds at most s.name_boost: only candidates that could reach the top k with it get it computed
    # (it is most of the ranking time on large indexes).
    bound = -math.inf
    if terms:
        seen: set[tuple] = set()
        for key in sorted(factor, key=lambda c: -fused[c].score * factor[c]):
            row = rows[key]
            seen.add((row.path, row.symbol or row.start_line))
            if len(seen) >= 2 * q.k:
                bound = fused[key].score * factor[key]
                break
    out: dict[Hashable, tuple[float, dict[str, float]]] = {}
    for key, f in factor.items():
        row, fz = rows[key], fused[key]
        total, parts = fz.score, dict(fz.parts)
        if terms and (total + s.name_boost) * f >= bound:
            nb = score.chunk_name_boost(terms, row.path, row.symbol)
            if nb:
                parts["name"] = s.name_boost * nb
                total += s.name_boost * nb
        if f < 1.0:
            parts["test-demotion"] = -0.1 * total
            total *= f
        out[key] = (total, parts)
    return out


def assemble_hits(rows: dict[Hashable, Row], scored: dict[Hashable, tuple[float, dict[str, float]]]) -> list[Hit]:
    """Hits (snippets still empty) best first; ties by path and line."""
    hits: list[Hit] = []
    for key, (total, parts) in scored.items():
        row = rows[key]
        sem = [(v, name) for name, v in parts.items() if name.startswith("sem:")]
        hits.append(Hit(chunk_id=key, path=row.path, symbol=row.symbol, kind=row.kind, language=row.language,
                        start_line=row.start_line, end_line=row.end_line, start_col=row.start_col,
                        end_col=row.end_col, score=float(total), snippet="",
                        space=max(sem)[1][4:] if sem else "", components=parts))
    hits.sort(key=lambda h: (-h.score, h.path, h.start_line))
    return hits


def path_ok(path: str, patterns: list[str] | None) -> bool:
    """Whether a workspace-relative path falls under one of the globs (a pattern also takes a folder's files)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or path == pat for pat in patterns)


def snippet(row: Row, lines: int = 6, width: int = 400) -> str:
    out = [ln for ln in row.text.splitlines() if ln.strip()][:lines]
    return "\n".join(out)[:width]
