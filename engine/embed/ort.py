"""Old import path of the ONNX Runtime embedder, kept for the benches that import it; new code imports
engine.embed.runtime.onnx."""

from .runtime.cache import VARIANTS, cache_root  # noqa: F401
from .runtime.onnx import OrtEmbedder  # noqa: F401
