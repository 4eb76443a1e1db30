"""Compact storage of token-vector matrices (multi-vector models): fp32, fp16, int8 and trained product quantisation.

Every blob starts with a 12-byte header (codec id, format version, dim, token count, codebook tag), so a blob
decoded with the wrong codec, dimension or codebook raises `CodecError` (a ValueError) instead of
returning plausible garbage; SQLite guards against bit rot, the header guards against mix-ups.

  fp32  4*d bytes/vector; decode is a zero-copy read-only view of the blob.
  fp16  2*d; exact fp16 -> fp32 widening (via torch when it is already imported: ~4x faster than numpy).
  int8  d + 4; symmetric per-vector scale (float32) and int8 values.
  pq    m bytes/vector, default 64 (128-, 384- and 768-d; `default_subspaces`): product quantisation with
        m subspaces x 256 k-means centroids; `PQCodec.train(sample, subspaces=32)` halves the size at a
        measurable MRR cost. At 32-34 bytes on 128-d (projected MiniLM) token vectors it beat a
        ColBERTv2-style centroid + 2-bit residual codec: 1st-percentile cosine 0.94 vs 0.77-0.82, same decode
        cost. Decoded vectors are renormalised, so it assumes unit-length inputs (every embedder here
        produces them). Needs a codebook: `PQCodec.train(sample)`, stored with `to_bytes()`, restored with
        `get_codec("pq", codebook=blob)` or `PQCodec.from_bytes`.

Bench helpers: `measure(codec, mats)` reports bytes/vector, encode/decode time and cosine distortion.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CODEC_NAMES = ("fp32", "fp16", "int8", "pq")
_IDS = {name: i + 1 for i, name in enumerate(CODEC_NAMES)}
_VERSION = 1
_HEADER = struct.Struct("<BBHII")  # codec id, format version, dim, token count, codebook tag (0 unless pq)
HEADER_BYTES = _HEADER.size
_MAX_DIM = 0xFFFF
_MAX_TOKENS = 0xFFFFFFFF

Buffer = bytes | bytearray | memoryview


class CodecError(ValueError):
    """A blob or codebook is malformed, truncated, or belongs to another codec, dimension or codebook."""


def _check_matrix(mat: np.ndarray) -> np.ndarray:
    arr = np.asarray(mat)
    if arr.ndim != 2:
        raise ValueError(f"expected a (tokens, dim) matrix, got shape {arr.shape}")
    if not 1 <= arr.shape[1] <= _MAX_DIM:
        raise ValueError(f"dimension {arr.shape[1]} out of range 1..{_MAX_DIM}")
    if arr.shape[0] > _MAX_TOKENS:
        raise ValueError("too many token vectors for one blob")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("matrix contains NaN or infinity")
    return arr


_torch_warned = False


def f16_to_f32(buf: Buffer) -> np.ndarray:
    """Widen little-endian fp16 values to a new float32 array (exact).

    numpy's cast runs at ~1 ns/value; torch's (F16C) is ~4x faster, so it is used when torch is already
    imported (it always is once a model is loaded); importing torch just for this would cost seconds.
    """
    global _torch_warned
    half = np.frombuffer(buf, dtype="<f2")
    torch = sys.modules.get("torch")
    if torch is not None and half.size >= 4096 and sys.byteorder == "little":
        try:
            if not _torch_warned:
                # torch warns once per process that the (read-only) buffer is not writable; it only reads it.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    out = torch.from_numpy(half).float().numpy()
                _torch_warned = True
                return out
            return torch.from_numpy(half).float().numpy()
        except Exception:  # pragma: no cover - a broken torch must not break decoding
            pass
    return half.astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    denom = na * nb
    out = np.ones(len(a), dtype=np.float64)
    np.divide(dots, denom, out=out, where=denom > 0)
    return out


class Codec(ABC):
    """Encodes a (tokens, dim) float32 matrix to bytes and back. Implementations are immutable and thread-safe."""

    name: str = ""

    @property
    def tag(self) -> int:
        """Identifies the codebook a blob needs (0 for codecs without one)."""
        return 0

    @abstractmethod
    def bytes_per_vector(self, dim: int) -> float:
        """Payload bytes per token vector (the 12-byte header per blob is not included)."""

    @abstractmethod
    def _encode_payload(self, mat: np.ndarray) -> bytes: ...

    @abstractmethod
    def _decode_payload(self, payload: memoryview, count: int, dim: int) -> np.ndarray: ...

    def encode(self, mat: np.ndarray) -> bytes:
        """Blob for a (tokens, dim) matrix; 0 tokens is fine."""
        arr = _check_matrix(mat)
        header = _HEADER.pack(_IDS[self.name], _VERSION, arr.shape[1], arr.shape[0], self.tag)
        return header + (self._encode_payload(arr) if arr.shape[0] else b"")

    def decode(self, blob: Buffer, dim: int) -> np.ndarray:
        """(tokens, dim) float32 matrix (possibly a read-only view of `blob`). Raises CodecError if malformed."""
        count, payload = self._open(blob, dim)
        if count == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return self._decode_payload(payload, count, dim)

    def decode_many(self, blobs: Sequence[Buffer], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode several blobs into one (sum tokens, dim) array plus the token count of each blob.

        One conversion over the joined payloads instead of one per blob: the shape `score.maxsim_packed` takes.
        """
        counts = np.zeros(len(blobs), dtype=np.int64)
        payloads = []
        for i, blob in enumerate(blobs):
            count, payload = self._open(blob, dim)
            counts[i] = count
            payloads.append(payload)
        total = int(counts.sum())
        if total == 0:
            return np.zeros((0, dim), dtype=np.float32), counts
        return self._decode_joined(payloads, counts, dim), counts

    def _decode_joined(self, payloads: list[memoryview], counts: np.ndarray, dim: int) -> np.ndarray:
        return self._decode_payload(memoryview(b"".join(payloads)), int(counts.sum()), dim)

    def _open(self, blob: Buffer, dim: int) -> tuple[int, memoryview]:
        try:
            view = memoryview(blob).cast("B")
        except TypeError:
            raise CodecError(f"expected a bytes-like blob, got {type(blob).__name__}") from None
        if len(view) < HEADER_BYTES:
            raise CodecError(f"blob of {len(view)} bytes is shorter than the {HEADER_BYTES}-byte header")
        codec_id, version, blob_dim, count, tag = _HEADER.unpack_from(view)
        if codec_id != _IDS[self.name]:
            other = CODEC_NAMES[codec_id - 1] if 1 <= codec_id <= len(CODEC_NAMES) else f"unknown codec {codec_id}"
            raise CodecError(f"blob was written by {other}, not {self.name}")
        if version != _VERSION:
            raise CodecError(f"blob format version {version} is not supported")
        if blob_dim != dim:
            raise CodecError(f"blob has dimension {blob_dim}, expected {dim}")
        if tag != self.tag:
            raise CodecError("blob was encoded with a different codebook")
        expected = count * self.bytes_per_vector(dim)
        if len(view) - HEADER_BYTES != expected:
            raise CodecError(f"blob payload is {len(view) - HEADER_BYTES} bytes, expected {expected:g}")
        return count, view[HEADER_BYTES:]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Fp32Codec(Codec):
    name = "fp32"

    def bytes_per_vector(self, dim: int) -> float:
        return 4 * dim

    def _encode_payload(self, mat: np.ndarray) -> bytes:
        return mat.astype("<f4", copy=False).tobytes()

    def _decode_payload(self, payload: memoryview, count: int, dim: int) -> np.ndarray:
        return np.frombuffer(payload, dtype="<f4").reshape(count, dim)


class Fp16Codec(Codec):
    name = "fp16"

    def bytes_per_vector(self, dim: int) -> float:
        return 2 * dim

    def _encode_payload(self, mat: np.ndarray) -> bytes:
        if mat.size and float(np.abs(mat).max()) > 65504.0:
            raise ValueError("values beyond the fp16 range (65504)")
        return mat.astype("<f2").tobytes()

    def _decode_payload(self, payload: memoryview, count: int, dim: int) -> np.ndarray:
        return f16_to_f32(payload).reshape(count, dim)


class Int8Codec(Codec):
    """Per vector: float32 scale s = max|x| / 127 and round(x / s) as int8. Blob: all scales, then all values."""

    name = "int8"

    def bytes_per_vector(self, dim: int) -> float:
        return dim + 4

    def _encode_payload(self, mat: np.ndarray) -> bytes:
        scales = np.abs(mat).max(axis=1) / np.float32(127.0)
        inv = np.zeros_like(scales)
        np.divide(1.0, scales, out=inv, where=scales > 0)
        q = np.clip(np.rint(mat * inv[:, None]), -127, 127).astype(np.int8)
        return scales.astype("<f4").tobytes() + q.tobytes()

    def _decode_payload(self, payload: memoryview, count: int, dim: int) -> np.ndarray:
        scales = np.frombuffer(payload, dtype="<f4", count=count)
        if not (np.isfinite(scales).all() and (scales >= 0).all()):
            raise CodecError("int8 blob has a corrupt scale")
        out = np.frombuffer(payload, dtype=np.int8, offset=4 * count).reshape(count, dim).astype(np.float32)
        out *= scales[:, None]
        return out

    def _decode_joined(self, payloads: list[memoryview], counts: np.ndarray, dim: int) -> np.ndarray:
        # Each payload is scales then values; regroup so one multiply covers every blob.
        scale_parts, value_parts = [], []
        for payload, count in zip(payloads, counts.tolist()):
            scale_parts.append(payload[: 4 * count])
            value_parts.append(payload[4 * count:])
        total = int(counts.sum())
        return self._decode_payload(memoryview(b"".join(scale_parts) + b"".join(value_parts)), total, dim)


# product quantisation ---------------------------------------------------------------------------------------------

_PQ_MAGIC = b"SGPQ"
_PQ_HEAD = struct.Struct("<4sHHHHI")  # magic, version, subspaces, centroids per subspace, reserved, dim
_PQ_DIGEST = 16
_PQ_CENTROIDS = 256  # one byte per subspace code


def default_subspaces(dim: int, max_bytes: int = 64) -> int:
    """The most subspaces (bytes per vector) up to `max_bytes` that split `dim` into parts of >= 2 dims.

    128-d -> 64 (2-d parts), 384-d -> 64 (6-d), 768-d -> 64 (12-d). On MiniLM token vectors (CoSQA slice,
    MaxSim MRR@10) 64 bytes lost 0.002-0.005; 32 bytes for 128-d lost 0.02.
    """
    for m in range(min(max_bytes, dim // 2), 0, -1):
        if dim % m == 0:
            return m
    return 1


def _pq_assign(x: np.ndarray, books: np.ndarray, block: int = 0) -> np.ndarray:
    """Nearest centroid (Euclidean) per subspace: x (n, m, s), books (m, k, s) -> codes (n, m) int64.

    Distances go through one small reused buffer (~4 MB): with large temporaries this ran 20x slower.
    """
    n, m, _ = x.shape
    k = books.shape[1]
    block = block or max(16, (1 << 20) // (m * k))
    sq = np.einsum("mks,mks->mk", books, books)[:, None, :]  # (m, 1, k); |x|^2 is constant per row
    neg2t = np.ascontiguousarray(books.transpose(0, 2, 1) * np.float32(-2.0))  # (m, s, k)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float32)  # (m, n, s)
    buf = np.empty((m, min(block, n), k), dtype=np.float32)
    out = np.empty((n, m), dtype=np.int64)
    for start in range(0, n, block):
        xs = xt[:, start:start + block]
        dist = buf[:, : xs.shape[1]]
        np.matmul(xs, neg2t, out=dist)
        dist += sq
        out[start:start + xs.shape[1]] = dist.argmin(axis=2).T
    return out


def train_codebooks(x: np.ndarray, subspaces: int, k: int = _PQ_CENTROIDS, iters: int = 12,
                    seed: int = 0) -> np.ndarray:
    """k-means (Lloyd, numpy only) in every subspace at once: x (n, d) -> codebooks (m, k, d/m) float32."""
    n, dim = x.shape
    if dim % subspaces:
        raise ValueError(f"dimension {dim} is not divisible into {subspaces} subspaces")
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} centroids from {n} vectors")
    sub = dim // subspaces
    xs = np.ascontiguousarray(x.reshape(n, subspaces, sub), dtype=np.float32)
    rng = np.random.default_rng(seed)
    books = np.ascontiguousarray(xs[rng.choice(n, size=k, replace=False)].transpose(1, 0, 2))  # (m, k, s)
    flat_x = xs.reshape(n * subspaces, sub)
    offsets = (np.arange(subspaces) * k)[None, :]
    for _ in range(iters):
        codes = _pq_assign(xs, books) + offsets  # (n, m) indices into the flattened (m*k) centroids
        flat_codes = codes.ravel()
        counts = np.bincount(flat_codes, minlength=subspaces * k)
        sums = np.zeros((subspaces * k, sub), dtype=np.float64)
        for j in range(sub):  # bincount per coordinate: much faster than np.add.at
            sums[:, j] = np.bincount(flat_codes, weights=flat_x[:, j], minlength=subspaces * k)
        empty = np.flatnonzero(counts == 0)
        if len(empty):  # reseed an empty centroid with a random training point of its subspace
            picks = rng.choice(n, size=len(empty))
            sums[empty] = xs[picks, empty // k]
            counts[empty] = 1
        books = (sums / counts[:, None]).astype(np.float32).reshape(subspaces, k, sub)
    return books


class PQCodec(Codec):
    """Product quantisation: `m` subspaces x 256 centroids, one byte per subspace, decoded vectors renormalised.

    Default: 64 subspaces (64 bytes/vector) for 128-, 384- and 768-d; see `default_subspaces`. Build with `train`.
    """

    name = "pq"

    def __init__(self, codebooks: np.ndarray):
        books = np.ascontiguousarray(codebooks, dtype=np.float32)
        if books.ndim != 3 or not 1 <= books.shape[0] <= 0xFFFF or not 1 <= books.shape[1] <= _PQ_CENTROIDS:
            raise ValueError("codebooks must have shape (subspaces, <=256 centroids, subspace dim)")
        if books.shape[0] * books.shape[2] > _MAX_DIM:
            raise ValueError("dimension too large")
        if not np.isfinite(books).all():
            raise ValueError("codebooks contain NaN or infinity")
        books.setflags(write=False)
        self.codebooks = books
        self.subspaces, self.centroids, self.subspace_dim = books.shape
        self.dim = self.subspaces * self.subspace_dim
        self._items = books.reshape(-1, self.subspace_dim).view(np.dtype((np.void, 4 * self.subspace_dim))).ravel()
        self._offsets = (np.arange(self.subspaces) * self.centroids).astype(np.intp)
        self._blob = self._serialise()
        self._tag = int.from_bytes(hashlib.blake2b(self._blob, digest_size=4).digest(), "little")

    # training ---------------------------------------------------------------------------------------------------

    @classmethod
    def train(cls, sample: np.ndarray, seed: int = 0, *, subspaces: int | None = None, iters: int = 12,
              max_train: int = 16384) -> PQCodec:
        """Fit codebooks on `sample` (n, d) token vectors (normalised first); deterministic for a seed.

        k-means sees at most `max_train` vectors (a seeded random subset; 64 per centroid: 4x more gained
        0.001 mean cosine on MiniLM token vectors at 4x the time).
        """
        x = _check_matrix(sample)
        x = _unit_rows(x[np.linalg.norm(x, axis=1) > 0])
        if len(x) == 0:
            raise ValueError("PQ training needs at least one non-zero vector")
        rng = np.random.default_rng(seed)
        if len(x) > max_train:
            x = x[np.sort(rng.choice(len(x), size=max_train, replace=False))]
        m = subspaces if subspaces is not None else default_subspaces(x.shape[1])
        k = min(_PQ_CENTROIDS, len(x))
        return cls(train_codebooks(x, m, k=k, iters=iters, seed=seed))

    # serialisation ----------------------------------------------------------------------------------------------

    def _serialise(self) -> bytes:
        body = (_PQ_HEAD.pack(_PQ_MAGIC, _VERSION, self.subspaces, self.centroids, 0, self.dim)
                + self.codebooks.astype("<f4").tobytes())
        return body + hashlib.blake2b(body, digest_size=_PQ_DIGEST).digest()

    def to_bytes(self) -> bytes:
        """The codebook, self-checking (magic, sizes, blake2b); every blob carries a 4-byte tag of it."""
        return self._blob

    @classmethod
    def from_bytes(cls, blob: Buffer) -> PQCodec:
        data = bytes(blob)
        if len(data) < _PQ_HEAD.size + _PQ_DIGEST:
            raise CodecError("PQ codebook is truncated")
        body, digest = data[:-_PQ_DIGEST], data[-_PQ_DIGEST:]
        if hashlib.blake2b(body, digest_size=_PQ_DIGEST).digest() != digest:
            raise CodecError("PQ codebook checksum mismatch")
        magic, version, m, k, _, dim = _PQ_HEAD.unpack_from(body)
        if magic != _PQ_MAGIC or version != _VERSION:
            raise CodecError("not a PQ codebook of a supported version")
        if m == 0 or dim % m or len(body) != _PQ_HEAD.size + 4 * k * dim:
            raise CodecError("PQ codebook size does not match its header")
        books = np.frombuffer(body, dtype="<f4", offset=_PQ_HEAD.size).reshape(m, k, dim // m)
        try:
            return cls(books)
        except ValueError as exc:
            raise CodecError(f"PQ codebook is inconsistent: {exc}") from None

    # codec ------------------------------------------------------------------------------------------------------

    @property
    def tag(self) -> int:
        return self._tag

    def bytes_per_vector(self, dim: int) -> float:
        return self.subspaces

    def encode(self, mat: np.ndarray) -> bytes:
        arr = np.asarray(mat)
        if arr.ndim == 2 and arr.shape[1] != self.dim:
            raise ValueError(f"codebook is for dimension {self.dim}, matrix has {arr.shape[1]}")
        return super().encode(arr)

    def _encode_payload(self, mat: np.ndarray) -> bytes:
        x = _unit_rows(mat).reshape(len(mat), self.subspaces, self.subspace_dim)
        return _pq_assign(x, self.codebooks).astype(np.uint8).tobytes()

    def _decode_payload(self, payload: memoryview, count: int, dim: int) -> np.ndarray:
        codes = np.frombuffer(payload, dtype=np.uint8).reshape(count, self.subspaces)
        if self.centroids < _PQ_CENTROIDS and codes.size and int(codes.max()) >= self.centroids:
            raise CodecError("PQ blob refers to a centroid the codebook does not have")
        # np.take over a 1-D array of whole-subvector items is ~5x faster than fancy-indexing 2-D rows
        out = np.take(self._items, (codes + self._offsets).ravel()).view(np.float32).reshape(count, dim)
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        np.divide(out, norms[:, None], out=out, where=norms[:, None] > 0)
        return out

    def __repr__(self) -> str:
        return f"<PQCodec {self.dim}-d, {self.subspaces} x {self.centroids} centroids>"


_SIMPLE = {"fp32": Fp32Codec(), "fp16": Fp16Codec(), "int8": Int8Codec()}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def get_codec(name: str, **params) -> Codec:
    """The codec called `name`. "pq" needs `codebook=` (bytes from `PQCodec.to_bytes`) or `trained=` (a PQCodec)."""
    if name in _SIMPLE:
        if params:
            raise ValueError(f"codec {name} takes no parameters, got {sorted(params)}")
        return _SIMPLE[name]
    if name == "pq":
        if "trained" in params and isinstance(params["trained"], PQCodec) and len(params) == 1:
            return params["trained"]
        if "codebook" in params and len(params) == 1:
            return PQCodec.from_bytes(params["codebook"])
        raise ValueError("codec pq needs codebook=<bytes> (train one with PQCodec.train)")
    raise ValueError(f"unknown codec {name!r}; expected one of {', '.join(CODEC_NAMES)}")


# bench helpers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecStats:
    """What one codec does to a set of token matrices."""

    codec: str
    vectors: int
    bytes_per_vector: float  # payload only
    blob_bytes_per_vector: float  # including the per-blob header
    encode_ms_per_1k: float
    decode_ms_per_1k: float  # one decode() per blob
    decode_many_ms_per_1k: float  # one decode_many() over all blobs
    mean_cosine: float
    p01_cosine: float  # 1st percentile: the bad tail
    min_cosine: float


def cosine_distortion(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-vector cosine between original and decoded rows (1.0 = no loss; zero rows count as 1.0)."""
    return _cosines(np.asarray(original, np.float64), np.asarray(decoded, np.float64))


def measure(codec: Codec, mats: Sequence[np.ndarray], repeat: int = 3) -> CodecStats:
    """Encode/decode `mats` with `codec` and report size, speed (best of `repeat`) and distortion."""
    if not mats:
        raise ValueError("nothing to measure")
    dim = mats[0].shape[1]
    n = sum(len(m) for m in mats)
    if n == 0:
        raise ValueError("no token vectors to measure")

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    blobs: list[bytes] = []
    t_enc = best(lambda: blobs.__setitem__(slice(None), [codec.encode(m) for m in mats]))
    t_dec = best(lambda: [codec.decode(b, dim) for b in blobs])
    t_many = best(lambda: codec.decode_many(blobs, dim))
    flat, _ = codec.decode_many(blobs, dim)
    cos = cosine_distortion(np.concatenate(mats), flat)
    per_1k = 1000.0 * 1000.0 / n
    return CodecStats(codec.name, n, codec.bytes_per_vector(dim), sum(len(b) for b in blobs) / n,
                      t_enc * per_1k, t_dec * per_1k, t_many * per_1k, float(cos.mean()),
                      float(np.quantile(cos, 0.01)), float(cos.min()))
