"""Unit tests for token-matrix codecs: round trips, error bounds, sizes, PQ training, and damaged blobs."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import (HEADER_BYTES, CodecError, PQCodec, cosine_distortion, default_subspaces, f16_to_f32,
                          get_codec, measure)


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 12) -> np.ndarray:
    """Unit vectors from a Gaussian mixture (token vectors are far from uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def pq32() -> PQCodec:
    return PQCodec.train(clustered(3000, 32, seed=1), seed=0, iters=6)


@pytest.fixture(scope="module")
def codecs(pq32) -> dict:
    return {"fp32": get_codec("fp32"), "fp16": get_codec("fp16"), "int8": get_codec("int8"), "pq": pq32}


NAMES = ["fp32", "fp16", "int8", "pq"]
MIN_COSINE = {"fp32": 1.0 - 1e-7, "fp16": 0.99999, "int8": 0.9995, "pq": 0.8}
MEAN_COSINE = {"fp32": 1.0 - 1e-7, "fp16": 0.999999, "int8": 0.9999, "pq": 0.93}


# round trips ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_shape_dtype_and_error_bound(codecs, name):
    codec = codecs[name]
    mat = clustered(200, 32, seed=5)  # unseen by PQ training
    blob = codec.encode(mat)
    assert isinstance(blob, bytes)
    out = codec.decode(blob, 32)
    assert out.shape == (200, 32) and out.dtype == np.float32
    cos = cosine_distortion(mat, out)
    assert cos.min() >= MIN_COSINE[name]
    assert cos.mean() >= MEAN_COSINE[name]


def test_lossless_codecs_exactly(codecs):
    mat = clustered(20, 32)
    np.testing.assert_array_equal(codecs["fp32"].decode(codecs["fp32"].encode(mat), 32), mat)
    np.testing.assert_array_equal(codecs["fp16"].decode(codecs["fp16"].encode(mat), 32),
                                  mat.astype(np.float16).astype(np.float32))
    out = codecs["int8"].decode(codecs["int8"].encode(mat), 32)
    assert np.abs(out - mat).max() <= np.abs(mat).max() / 127 / 2 + 1e-7  # half a quantisation step


def test_int8_keeps_scale_and_zero_rows(codecs):
    mat = np.vstack([clustered(3, 32) * 7.5, np.zeros((1, 32), np.float32)])
    out = codecs["int8"].decode(codecs["int8"].encode(mat), 32)
    np.testing.assert_allclose(np.linalg.norm(out[:3], axis=1), 7.5, rtol=1e-2)
    assert not out[3].any()


def test_pq_decodes_unit_vectors(codecs):
    out = codecs["pq"].decode(codecs["pq"].encode(clustered(50, 32, seed=9) * 3.0), 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_empty_matrix(codecs, name):
    codec = codecs[name]
    blob = codec.encode(np.zeros((0, 32), np.float32))
    assert len(blob) == HEADER_BYTES
    out = codec.decode(blob, 32)
    assert out.shape == (0, 32) and out.dtype == np.float32
    flat, counts = codec.decode_many([blob, blob], 32)
    assert flat.shape == (0, 32) and counts.tolist() == [0, 0]
    flat, counts = codec.decode_many([], 32)
    assert flat.shape == (0, 32) and counts.tolist() == []


@pytest.mark.parametrize("name", NAMES)
def test_bytes_per_vector_is_what_the_blob_takes(codecs, name):
    codec = codecs[name]
    for t in (1, 7, 64):
        assert len(codec.encode(clustered(t, 32))) == HEADER_BYTES + t * codec.bytes_per_vector(32)


def test_reported_sizes():
    assert get_codec("fp32").bytes_per_vector(128) == 512
    assert get_codec("fp16").bytes_per_vector(128) == 256
    assert get_codec("int8").bytes_per_vector(128) == 132
    pq = PQCodec.train(clustered(600, 128), iters=2)
    assert pq.bytes_per_vector(128) == 64 and pq.subspaces == 64
    small = PQCodec.train(clustered(600, 128), subspaces=32, iters=2)
    assert small.bytes_per_vector(128) == 32


@pytest.mark.parametrize("name", NAMES)
def test_decode_many_equals_decoding_one_by_one(codecs, name):
    codec = codecs[name]
    mats = [clustered(n, 32, seed=n) for n in (3, 0, 11, 1)]
    blobs = [codec.encode(m) for m in mats]
    flat, counts = codec.decode_many(blobs, 32)
    assert counts.tolist() == [3, 0, 11, 1] and flat.dtype == np.float32
    np.testing.assert_array_equal(flat, np.concatenate([codec.decode(b, 32) for b in blobs]))


@pytest.mark.parametrize("name", NAMES)
def test_accepts_any_bytes_like(codecs, name):
    codec = codecs[name]
    blob = codec.encode(clustered(5, 32))
    ref = codec.decode(blob, 32)
    np.testing.assert_array_equal(codec.decode(bytearray(blob), 32), ref)
    np.testing.assert_array_equal(codec.decode(memoryview(blob), 32), ref)


def test_fp16_fast_path_matches_numpy():
    torch = pytest.importorskip("torch")
    assert torch is not None
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float16)
    values[:4] = [0.0, -0.0, 6e-8, -65504]  # zero, negative zero, subnormal, extreme
    out = f16_to_f32(values.tobytes())
    np.testing.assert_array_equal(out, values.astype(np.float32))
    assert out.dtype == np.float32 and out.flags.writeable
    np.testing.assert_array_equal(f16_to_f32(values[:10].tobytes()), values[:10].astype(np.float32))


# input validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_encode_rejects_bad_matrices(codecs, name):
    codec = codecs[name]
    with pytest.raises(ValueError):
        codec.encode(np.ones(32, np.float32))
    bad = clustered(4, 32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError):
        codec.encode(bad)
    with pytest.raises(ValueError):
        codec.encode(np.ones((2, 2, 2), np.float32))


def test_encode_rejects_out_of_range_or_wrong_dim(pq32):
    with pytest.raises(ValueError):
        get_codec("fp16").encode(np.full((1, 4), 1e6, np.float32))
    with pytest.raises(ValueError):
        pq32.encode(clustered(3, 16))


def test_get_codec():
    assert get_codec("int8").name == "int8"
    with pytest.raises(ValueError):
        get_codec("bf16")
    with pytest.raises(ValueError):
        get_codec("pq")
    with pytest.raises(ValueError):
        get_codec("fp32", codebook=b"")


# damaged blobs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_raises_codec_error(codecs, name):
    codec = codecs[name]
    blob = codec.encode(clustered(3, 32))
    for cut in range(len(blob)):
        with pytest.raises(CodecError):
            codec.decode(blob[:cut], 32)
    with pytest.raises(CodecError):
        codec.decode(blob + b"\0", 32)
    with pytest.raises(CodecError):
        codec.decode_many([blob, blob[:-1]], 32)


@pytest.mark.parametrize("name", NAMES)
def test_mixups_raise_codec_error(codecs, name):
    codec = codecs[name]
    blob = codec.encode(clustered(3, 32))
    with pytest.raises(CodecError):
        codec.decode(blob, 16)  # wrong dimension
    for other in NAMES:
        if other != name:
            with pytest.raises(CodecError, match="written by"):
                codecs[other].decode(blob, 32)
    bumped = bytes([blob[0], blob[1] + 1]) + blob[2:]
    with pytest.raises(CodecError, match="version"):
        codec.decode(bumped, 32)
    with pytest.raises(CodecError):
        codec.decode(bytes([99]) + blob[1:], 32)
    with pytest.raises(CodecError):
        codec.decode(None, 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # CodecError is a ValueError
        codec.decode(b"", 32)


def test_fp32_blob_reinterpreted_with_another_dim_is_caught():
    codec = get_codec("fp32")
    blob = codec.encode(clustered(3, 128))  # 3 x 128 floats == 1 x 384 floats
    with pytest.raises(CodecError):
        codec.decode(blob, 384)


def test_int8_corrupt_scale_raises():
    codec = get_codec("int8")
    blob = bytearray(codec.encode(clustered(3, 32)))
    blob[HEADER_BYTES + 4:HEADER_BYTES + 8] = struct.pack("<f", float("nan"))
    with pytest.raises(CodecError, match="scale"):
        codec.decode(bytes(blob), 32)
    blob[HEADER_BYTES + 4:HEADER_BYTES + 8] = struct.pack("<f", -1.0)
    with pytest.raises(CodecError):
        codec.decode(bytes(blob), 32)


def test_pq_blob_from_another_codebook_raises(pq32):
    other = PQCodec.train(clustered(3000, 32, seed=2), seed=0, iters=2)
    with pytest.raises(CodecError, match="codebook"):
        other.decode(pq32.encode(clustered(3, 32)), 32)


def test_pq_code_beyond_a_small_codebook_raises():
    pq = PQCodec.train(clustered(40, 8), subspaces=4, iters=2)  # only 40 centroids per subspace
    assert pq.centroids == 40
    blob = bytearray(pq.encode(clustered(2, 8, seed=4)))
    blob[-1] = 200
    with pytest.raises(CodecError, match="centroid"):
        pq.decode(bytes(blob), 8)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(NAMES), st.sampled_from([8, 32]))
def test_random_bytes_never_crash(codecs, data, name, dim):
    codec = codecs[name]
    try:
        out = codec.decode(data, dim)
    except CodecError:
        return
    assert out.shape[1] == dim and out.dtype == np.float32


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_valid_blobs_decode_or_raise_codec_error(codecs, data):
    name = data.draw(st.sampled_from(NAMES))
    codec = codecs[name]
    blob = bytearray(codec.encode(clustered(4, 32, seed=3)))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        codec.decode(bytes(blob), 32)
    except CodecError:
        pass


# PQ training and codebooks ----------------------------------------------------------------------------------------


def test_pq_training_is_deterministic_for_a_seed():
    sample = clustered(2000, 16, seed=3)
    a = PQCodec.train(sample, seed=7, iters=4)
    b = PQCodec.train(sample, seed=7, iters=4)
    c = PQCodec.train(sample, seed=8, iters=4)
    assert a.to_bytes() == b.to_bytes()
    assert a.to_bytes() != c.to_bytes()
    mat = clustered(10, 16, seed=4)
    assert a.encode(mat) == b.encode(mat)


def test_pq_codebook_round_trip(pq32):
    blob = pq32.to_bytes()
    again = PQCodec.from_bytes(blob)
    assert again.to_bytes() == blob and again.tag == pq32.tag
    via_registry = get_codec("pq", codebook=blob)
    mat = clustered(9, 32, seed=8)
    enc = pq32.encode(mat)
    assert via_registry.encode(mat) == enc
    np.testing.assert_array_equal(via_registry.decode(enc, 32), pq32.decode(enc, 32))
    assert get_codec("pq", trained=pq32) is pq32


def test_pq_damaged_codebook_raises(pq32):
    blob = pq32.to_bytes()
    for bad in (b"", blob[:10], blob[:-1], blob + b"\0", bytes([blob[0] ^ 1]) + blob[1:],
                blob[:100] + bytes([blob[100] ^ 0x10]) + blob[101:]):
        with pytest.raises(CodecError):
            PQCodec.from_bytes(bad)


def test_pq_more_subspaces_is_more_accurate():
    sample = clustered(3000, 32, seed=11)
    test = clustered(300, 32, seed=12)
    coarse = PQCodec.train(sample, subspaces=8, iters=6)
    fine = PQCodec.train(sample, subspaces=16, iters=6)
    c = cosine_distortion(test, coarse.decode(coarse.encode(test), 32)).mean()
    f = cosine_distortion(test, fine.decode(fine.encode(test), 32)).mean()
    assert f > c


def test_pq_training_edge_cases():
    tiny = PQCodec.train(clustered(5, 8), subspaces=4, iters=3)
    assert tiny.centroids == 5
    out = tiny.decode(tiny.encode(clustered(5, 8)), 8)
    assert out.shape == (5, 8)
    with pytest.raises(ValueError):
        PQCodec.train(np.zeros((10, 8), np.float32))
    with pytest.raises(ValueError):
        PQCodec.train(clustered(100, 8), subspaces=3)
    with pytest.raises(ValueError):
        PQCodec.train(np.zeros((0, 8), np.float32))


def test_default_subspaces():
    assert default_subspaces(128) == 64
    assert default_subspaces(384) == 64
    assert default_subspaces(768) == 64
    assert default_subspaces(96) == 48
    assert default_subspaces(1) == 1
    assert default_subspaces(128, max_bytes=32) == 32


# bench helper -----------------------------------------------------------------------------------------------------


def test_measure_reports(codecs):
    mats = [clustered(n, 32, seed=n) for n in (5, 9, 0, 20)]
    stats = measure(codecs["int8"], mats, repeat=1)
    assert stats.codec == "int8" and stats.vectors == 34
    assert stats.bytes_per_vector == 36
    assert stats.blob_bytes_per_vector == pytest.approx(36 + 4 * HEADER_BYTES / 34)
    assert 0.999 < stats.mean_cosine <= 1.0 and stats.min_cosine <= stats.p01_cosine <= stats.mean_cosine
    assert stats.encode_ms_per_1k > 0 and stats.decode_ms_per_1k > 0
    with pytest.raises(ValueError):
        measure(codecs["int8"], [])
