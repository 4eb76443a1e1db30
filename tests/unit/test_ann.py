"""Unit tests for the hnswlib candidate index: recall, mutation, capping, persistence and damage detection."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.backends.local import ann
from engine.backends.local.ann import AnnIndex, sidecar_path


def mixture(n: int, dim: int, clusters: int = 40, spread: float = 1.0, seed: int = 0) -> np.ndarray:
    """Unit vectors from an unbalanced Gaussian mixture: neighbours share a cluster, as real embeddings do."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 0.5))
    labels = rng.choice(clusters, size=n, p=weights)
    x = centers[labels] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(index: AnnIndex, base: np.ndarray, base_ids: np.ndarray, queries: np.ndarray) -> float:
    exact = base_ids[np.argsort(-(queries @ base.T), axis=1)[:, :10]]
    hits = [len(set(index.search(q, 10)[0].tolist()) & set(e.tolist())) for q, e in zip(queries, exact)]
    return float(np.mean(hits)) / 10


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = mixture(3200, 64)
    return x[:3000], x[3000:]


@pytest.fixture(scope="module")
def built(data) -> AnnIndex:
    base, _ = data
    return AnnIndex.build(64, np.arange(3000) * 7 + 5, base)


def small(n: int = 50, dim: int = 16, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n, dtype=np.int64) + 100, mixture(n, dim, clusters=5, seed=seed)


# recall -------------------------------------------------------------------------------------------------------------


def test_recall_at_10_on_clustered_vectors(built, data):
    base, queries = data
    assert recall_at_10(built, base, np.arange(3000) * 7 + 5, queries) >= 0.95


def test_weak_parameters_do_lose_recall_so_the_data_is_not_trivial(data):
    base, queries = data
    weak = AnnIndex.build(64, np.arange(3000), base, m=4, ef_construction=20, ef_search=10)
    assert recall_at_10(weak, base, np.arange(3000), queries) < 0.9


def test_similarities_are_cosines_best_first(built, data):
    base, queries = data
    ids, sims = built.search(queries[0], 25)
    assert ids.dtype == np.int64 and sims.dtype == np.float32
    assert np.all(np.diff(sims) <= 1e-6)
    rows = (ids - 5) // 7
    np.testing.assert_allclose(sims, base[rows] @ queries[0], atol=1e-5)


def test_vectors_are_normalised_on_the_way_in():
    ids, vecs = small()
    a = AnnIndex.build(16, ids, vecs)
    b = AnnIndex.build(16, ids, vecs * np.linspace(0.1, 50, len(vecs), dtype=np.float32)[:, None])
    q = vecs[3] * 9.0
    ia, sa = a.search(q, 10)
    ib, sb = b.search(q, 10)
    assert ia.tolist() == ib.tolist()
    np.testing.assert_allclose(sa, sb, atol=1e-5)
    assert abs(sa[0] - 1.0) < 1e-5 and ia[0] == ids[3]


def test_search_batch_matches_single_searches(built, data):
    _, queries = data
    ids, sims = built.search_batch(queries[:5], 7)
    for q, i, s in zip(queries[:5], ids, sims):
        i1, s1 = built.search(q, 7)
        assert i.tolist() == i1.tolist()
        np.testing.assert_allclose(s, s1)


# capping and empty ----------------------------------------------------------------------------------------------


def test_k_is_capped_by_live_count():
    ids, vecs = small(5)
    index = AnnIndex.build(16, ids, vecs)
    got, sims = index.search(vecs[0], 100)
    assert sorted(got.tolist()) == ids.tolist() and len(sims) == 5
    index.remove(ids[:2])
    got, _ = index.search(vecs[0], 100)
    assert sorted(got.tolist()) == ids[2:].tolist()


@pytest.mark.parametrize("k", [0, -3])
def test_non_positive_k_gives_empty(k):
    ids, vecs = small(5)
    got, sims = AnnIndex.build(16, ids, vecs).search(vecs[0], k)
    assert got.shape == (0,) and sims.shape == (0,)


def test_empty_index():
    index = AnnIndex.build(8, np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    assert len(index) == 0 and index.deleted_count == 0 and not index.needs_compaction()
    ids, sims = index.search(np.ones(8, np.float32), 10)
    assert ids.shape == (0,) and ids.dtype == np.int64 and sims.dtype == np.float32
    index.add([3], np.ones((1, 8), np.float32))
    assert index.search(np.ones(8, np.float32), 10)[0].tolist() == [3]


def test_everything_removed_gives_empty():
    ids, vecs = small(10)
    index = AnnIndex.build(16, ids, vecs)
    index.remove(ids)
    assert len(index) == 0
    assert index.search(vecs[0], 5)[0].size == 0


def test_zero_query_does_not_raise():
    ids, vecs = small(10)
    got, sims = AnnIndex.build(16, ids, vecs).search(np.zeros(16, np.float32), 3)
    assert len(got) == 3 and np.all(np.abs(sims) < 1e-6)


# validation -------------------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error():
    ids, vecs = small(10)
    with pytest.raises(ValueError):
        AnnIndex.build(16, ids, vecs[:, :8])
    with pytest.raises(ValueError):
        AnnIndex.build(16, ids[:5], vecs)
    with pytest.raises(ValueError):
        AnnIndex.build(16, -ids, vecs)
    bad = vecs.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError):
        AnnIndex.build(16, ids, bad)
    index = AnnIndex.build(16, ids, vecs)
    with pytest.raises(ValueError):
        index.search(np.ones(15, np.float32), 3)
    with pytest.raises(ValueError):
        index.add(np.array([1.5]), vecs[:1])


def test_repeated_id_in_one_batch_keeps_the_last_row():
    _, vecs = small(3)
    index = AnnIndex.build(16, np.array([7, 7, 8]), vecs)
    assert len(index) == 2
    np.testing.assert_allclose(index.vectors([7])[0], vecs[1], atol=1e-6)


# mutation ---------------------------------------------------------------------------------------------------------


def test_add_grows_capacity_geometrically():
    ids, vecs = small(200, seed=3)
    index = AnnIndex.build(16, ids[:20], vecs[:20])
    capacities = []
    for start in range(20, 200, 10):
        index.add(ids[start:start + 10], vecs[start:start + 10])
        capacities.append(index.capacity)
    assert len(index) == 200
    assert len(set(capacities)) < 10  # not one resize per batch
    assert index.search(vecs[150], 1)[0].tolist() == [ids[150]]


def test_readding_a_live_id_replaces_its_vector():
    ids, vecs = small(60)
    index = AnnIndex.build(16, ids, vecs)
    new = -vecs[10]
    index.add([ids[10]], new[None, :])
    assert len(index) == 60 and index.deleted_count == 0
    got, sims = index.search(new, 1)
    assert got.tolist() == [ids[10]] and sims[0] > 0.999
    got, _ = index.search(vecs[10], 60)
    assert got[-1] == ids[10]  # now the least similar


def test_replace_in_a_one_element_index():
    v = np.eye(4, dtype=np.float32)
    index = AnnIndex.build(4, [5], v[:1])
    index.add([5], v[1:2])
    assert index.search(v[1], 3)[0].tolist() == [5] and index.search(v[1], 3)[1][0] > 0.999
    index.remove([5])
    index.add([5], v[2:3])
    assert len(index) == 1 and index.deleted_count == 0
    assert index.search(v[2], 3)[1][0] > 0.999


def test_remove_and_readd():
    ids, vecs = small(60)
    index = AnnIndex.build(16, ids, vecs)
    assert index.remove([ids[0], ids[1], 99999, ids[1]]) == 2
    assert index.remove([ids[0]]) == 0  # already deleted
    assert len(index) == 58 and index.deleted_count == 2
    got, _ = index.search(vecs[0], 60)
    assert ids[0] not in got and ids[1] not in got and len(got) == 58
    index.add([ids[0]], vecs[:1])
    assert len(index) == 59 and index.deleted_count == 1
    assert index.search(vecs[0], 1)[0].tolist() == [ids[0]]
    assert set(index.live_ids().tolist()) == set(ids.tolist()) - {ids[1]}
    with pytest.raises(KeyError):
        index.vectors([ids[1]])


def test_heavy_deletion_still_returns_exactly_the_live_top_k():
    ids, vecs = small(400, seed=5)
    index = AnnIndex.build(16, ids, vecs, m=4, ef_construction=20, ef_search=10)
    index.remove(ids[::10].tolist() + ids[1::10].tolist() + ids[2::10].tolist() + ids[3::10].tolist()
                 + ids[4::10].tolist() + ids[5::10].tolist() + ids[6::10].tolist() + ids[7::10].tolist()
                 + ids[8::10].tolist())
    live = ids[9::10]
    assert len(index) == len(live) == 40
    for q in vecs[:20]:
        got, sims = index.search(q, 40)
        assert sorted(got.tolist()) == sorted(live.tolist())
        assert np.all(np.diff(sims) <= 1e-6)


class _FailingKnn:
    """Delegates to a real hnswlib index but fails `fail` knn queries, as hnswlib does when it finds < k live."""

    def __init__(self, inner, fail: int):
        self._inner, self.fail, self.calls = inner, fail, 0

    def knn_query(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")
        return self._inner.knn_query(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.parametrize("fail", [1, 2])
def test_search_falls_back_when_hnswlib_cannot_fill_k(fail):
    ids, vecs = small(100)
    index = AnnIndex.build(16, ids, vecs)
    index.remove(ids[:50])
    expected = index.search(vecs[60], 10)
    index._index = _FailingKnn(index._index, fail)
    got, sims = index.search(vecs[60], 10)
    assert got.tolist() == expected[0].tolist()
    np.testing.assert_allclose(sims, expected[1], atol=1e-5)
    assert index._index.ef == index.ef_search  # restored after the retry


def test_compaction_threshold_and_compact():
    ids, vecs = small(100)
    index = AnnIndex.build(16, ids, vecs)
    index.remove(ids[:30])
    assert not index.needs_compaction()  # exactly 30%
    index.remove(ids[30:31])
    assert index.needs_compaction()
    fresh = index.compact()
    assert fresh.deleted_count == 0 and not fresh.needs_compaction()
    assert fresh.live_ids().tolist() == ids[31:].tolist()
    assert fresh.search(vecs[50], 1)[0].tolist() == [ids[50]]
    rebuilt = AnnIndex.build(16, index.live_ids(), index.vectors(index.live_ids()))
    assert rebuilt.live_ids().tolist() == fresh.live_ids().tolist()


def test_concurrent_adds_and_searches():
    ids, vecs = small(1200, dim=32, seed=7)
    index = AnnIndex.build(32, ids[:100], vecs[:100])
    errors: list[BaseException] = []

    def writer():
        try:
            for start in range(100, 1200, 50):
                index.add(ids[start:start + 50], vecs[start:start + 50])
                index.remove(ids[start - 100:start - 90])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            for i in range(300):
                got, sims = index.search(vecs[i % 1200], 20)
                assert len(got) == len(sims) <= 20
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    removed = {int(i) for start in range(100, 1200, 50) for i in ids[start - 100:start - 90]}
    assert len(index) == 1200 - len(removed)
    assert set(index.live_ids().tolist()) == set(ids.tolist()) - removed


# persistence ------------------------------------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path) -> tuple[Path, AnnIndex, np.ndarray, np.ndarray]:
    ids, vecs = small(300, dim=16, seed=9)
    index = AnnIndex.build(16, ids, vecs)
    index.remove(ids[:5])
    path = tmp_path / "idx" / "code.hnsw"
    index.save(path, generation=3)
    return path, index, ids, vecs


def test_save_load_round_trip(saved):
    path, index, ids, vecs = saved
    loaded = AnnIndex.load(path, expected_generation=3, dim=16)
    assert loaded is not None
    assert len(loaded) == len(index) == 295 and loaded.deleted_count == 5
    assert loaded.ef_search == index.ef_search
    for q in vecs[:10]:
        a, sa = index.search(q, 10)
        b, sb = loaded.search(q, 10)
        assert a.tolist() == b.tolist()
        np.testing.assert_allclose(sa, sb)
    assert ids[0] not in loaded.search(vecs[0], 300)[0]
    loaded.add(ids[:1], vecs[:1])  # the loaded index knows which labels are deleted
    assert loaded.deleted_count == 4 and len(loaded) == 296
    assert sorted(p.name for p in path.parent.iterdir()) == ["code.hnsw", "code.hnsw.meta.json"]


def test_load_rejects_wrong_generation_or_dim(saved):
    path, *_ = saved
    assert AnnIndex.load(path, expected_generation=4, dim=16) is None
    assert AnnIndex.load(path, expected_generation=3, dim=32) is None


def test_load_missing_files(saved, tmp_path):
    path, *_ = saved
    assert AnnIndex.load(tmp_path / "nope.hnsw", 3, 16) is None
    sidecar_path(path).unlink()
    assert AnnIndex.load(path, 3, 16) is None


def test_load_missing_main_file(saved):
    path, *_ = saved
    path.unlink()
    assert AnnIndex.load(path, 3, 16) is None


def test_load_rejects_truncated_file(saved):
    path, *_ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert AnnIndex.load(path, 3, 16) is None
    path.write_bytes(b"")
    assert AnnIndex.load(path, 3, 16) is None


def test_load_rejects_a_flipped_byte(saved):
    path, *_ = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    assert AnnIndex.load(path, 3, 16) is None


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"format": 1}'])
def test_load_rejects_garbage_sidecar(saved, text):
    path, *_ = saved
    sidecar_path(path).write_text(text)
    assert AnnIndex.load(path, 3, 16) is None


def test_load_rejects_a_tampered_deleted_list(saved):
    path, *_ = saved
    meta = json.loads(sidecar_path(path).read_text())
    meta["deleted"] = meta["deleted"][1:]
    sidecar_path(path).write_text(json.dumps(meta))
    assert AnnIndex.load(path, 3, 16) is None


def test_crash_between_the_two_writes_is_detected(saved, tmp_path):
    path, index, ids, vecs = saved
    old_main, old_meta = tmp_path / "old_main", tmp_path / "old_meta"
    shutil.copy(path, old_main)
    shutil.copy(sidecar_path(path), old_meta)
    index.add([1], vecs[:1])
    index.save(path, generation=4)
    new_meta = sidecar_path(path).read_bytes()

    # New index file, old sidecar (crash after the first replace): old generation must not load it.
    shutil.copy(old_meta, sidecar_path(path))
    assert AnnIndex.load(path, 3, 16) is None
    # Old index file, new sidecar (the other order).
    shutil.copy(old_main, path)
    sidecar_path(path).write_bytes(new_meta)
    assert AnnIndex.load(path, 4, 16) is None


def test_failed_sidecar_write_leaves_an_unloadable_pair(saved, monkeypatch):
    path, index, ids, vecs = saved
    index.remove(ids[10:20])

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(ann, "_atomic_write_text", boom)
    with pytest.raises(OSError):
        index.save(path, generation=3)  # same generation: only the digest can tell
    assert AnnIndex.load(path, 3, 16) is None
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_save_of_empty_index(tmp_path):
    index = AnnIndex.build(8, np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    index.save(tmp_path / "e.hnsw", 0)
    loaded = AnnIndex.load(tmp_path / "e.hnsw", 0, 8)
    assert loaded is not None and len(loaded) == 0
    assert loaded.search(np.ones(8, np.float32), 4)[0].size == 0


def test_lookup_returns_live_vectors_and_skips_unknown_and_deleted():
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(20, 8)).astype(np.float32)
    idx = AnnIndex.build(8, np.arange(20), vecs)
    idx.remove([4])
    found, got = idx.lookup([1, 4, 99, 7])  # 4 is deleted, 99 never existed
    assert found.tolist() == [1, 7]
    np.testing.assert_allclose(got, vecs[[1, 7]] / np.linalg.norm(vecs[[1, 7]], axis=1, keepdims=True), atol=1e-6)
    assert idx.lookup([])[0].size == 0 and idx.lookup([99])[1].shape == (0, 8)
