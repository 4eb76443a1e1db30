"""Tuning configuration: one typed tree (base model, mining, LoRA, training phases, output) read from YAML."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import merge_into

# configs/ at the repository root; `--config local_default` finds configs/train_local_default.yaml.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

# LoRA targets per architecture (config.json "model_type"): the attention query and value projections.
TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "umt5": ["q", "v"],
    "mpnet": ["q", "v"],
    "distilbert": ["q_lin", "v_lin"],
    "modernbert": ["Wqkv"],
    "nomic_bert": ["Wqkv"],
    "qwen2": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
}


@dataclass
class MiningConfig:
    """Which training pairs to mine from the indexed chunks, and how many hard negatives each gets."""

    doc_pairs: bool = True  # docstring / doc comment first sentence -> function without that docstring
    doc_paragraph_pairs: bool = False  # also the whole first paragraph, when longer than its first sentence
    name_pairs: bool = True  # function name split into words -> function
    class_pairs: bool = True  # class docstring (or name) -> one of its methods
    import_pairs: bool = True  # imported name -> a function of that file that uses it
    # caps as a share of the docstring pairs (the pair type closest to what users type)
    name_share: float = 0.5
    class_share: float = 0.1
    import_share: float = 0.1
    min_query_words: int = 3
    max_query_words: int = 48
    min_name_words: int = 2
    min_code_chars: int = 30  # the positive without its docstring must keep at least this much code
    max_pairs: int = 20000
    same_file_negatives: int = 2
    bm25_negatives: int = 2
    bm25_depth: int = 20
    strip_negative_docs: bool = True  # negatives lose their docstrings too, so "has no docstring" is no cue
    # strip: positives lose their docstrings; rest: a doc pair's positive keeps what follows the first paragraph
    # and every other positive and negative keeps its docstring (code as search sees it)
    positive_docs: str = "strip"
    skip_generated: bool = True
    heldout_fraction: float = 0.1
    heldout_min: int = 10
    heldout_max: int = 150
    languages: list[str] = field(default_factory=list)  # keep only chunks of these languages (empty: all)
    extra_pairs: list[str] = field(default_factory=list)  # user JSONL files (query, positive[, negatives])


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=list)  # empty: chosen from the architecture (TARGETS)
    layers: list[int] = field(default_factory=list)  # empty: every layer


@dataclass
class TrainSettings:
    epochs: float = 3.0
    batch_size: int = 16  # queries per step; each brings its positive and `negatives` hard negatives
    grad_accum: int = 1
    negatives: int = 1  # hard negatives per query used in a step (of those mined)
    lr: float = 3e-4
    warmup: float = 0.1  # share of the steps
    weight_decay: float = 0.01
    temperature: float = 0.05
    max_query_length: int = 64
    max_doc_length: int = 0  # 0: the model's own limit (what indexing uses)
    max_steps: int = 0  # 0: from epochs
    time_budget_minutes: float = 0.0  # 0: no limit; else stop cleanly (keeping the best state) when spent
    eval_every: int = 25  # optimizer steps between held-out checks (early stopping)
    patience: int = 4  # held-out checks without improvement before stopping
    save_every: int = 50  # optimizer steps between resumable checkpoints
    resume: bool = True
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA autocast)
    accelerate: bool = False  # use HF accelerate (multi-GPU) when installed
    base_dropout: bool = False  # dropout inside the frozen model (off: ~2x faster steps on CPU; LoRA dropout stays)
    threads: int = 0  # CPU threads for training (0: models.threads / torch default)
    similarity: str = "auto"  # auto | cosine | maxsim (auto: from the model, multi-vector -> maxsim)


@dataclass
class PhaseConfig:
    """One training phase: where its pairs come from, and overrides of the training settings."""

    name: str = "local"
    source: str = "local"  # local (mined from the workspace) | codesearchnet (JSONL files) | jsonl (sg pairs)
    paths: list[str] = field(default_factory=list)  # for codesearchnet / jsonl; globs allowed, .gz read
    max_pairs: int = 0  # 0: all
    languages: list[str] = field(default_factory=list)  # codesearchnet: keep only these
    train: dict[str, Any] = field(default_factory=dict)  # overrides of TrainSettings for this phase


@dataclass
class OutputConfig:
    root: str = ""  # default $SG_CACHE_DIR/models/local or ~/.cache/sg/models/local
    name: str = ""  # default: the workspace directory name; the model goes to <root>/<name>-vN
    keep_checkpoints: bool = False


@dataclass
class EvalConfig:
    pool: int = 600  # documents the held-out queries are ranked against (positives, negatives, then others)


@dataclass
class TuneConfig:
    base_model: str = "auto"  # auto | offline-default | a directory | a cached hub id
    use_default_adapter: bool = True  # with the offline default: start from it with sg's adapter merged (as served)
    mining: MiningConfig = field(default_factory=MiningConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])
    output: OutputConfig = field(default_factory=OutputConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    source: str = ""  # the file this came from

    def output_root(self) -> Path:
        if self.output.root:
            return Path(os.path.expanduser(self.output.root))
        base = os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg"
        return Path(base) / "models" / "local"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def phase_train(self, phase: PhaseConfig) -> TrainSettings:
        out = dataclasses.replace(self.train)
        _merge(out, phase.train, f"phases.{phase.name}.train.")
        return out


def _phases(value: Any, where: str) -> list[PhaseConfig]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list")
    phases = []
    for i, item in enumerate(value):
        ph = PhaseConfig()
        _merge(ph, item, f"{where}[{i}].")
        if ph.source not in ("local", "codesearchnet", "jsonl"):
            raise ConfigError(f"{where}[{i}].source must be local, codesearchnet or jsonl")
        phases.append(ph)
    return phases


def _merge(obj: Any, data: Any, where: str) -> None:
    """Copy keys of `data` onto dataclass `obj`; unlike .sg.toml, a typo here is an error (training is explicit)."""
    merge_into(obj, data, where, None, {"phases": _phases})


def resolve_config_path(config_path: str | None) -> Path | None:
    """A path, or a short name of a shipped config ("local_default" -> configs/train_local_default.yaml)."""
    if not config_path:
        default = CONFIG_DIR / "train_local_default.yaml"
        return default if default.is_file() else None
    p = Path(os.path.expanduser(config_path))
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / f"train_{config_path}.yaml", CONFIG_DIR / f"{config_path}.yaml",
                 CONFIG_DIR / config_path):
        if cand.is_file():
            return cand
    raise ConfigError(f"training config {config_path!r} not found (nor in {CONFIG_DIR})")


def load_config(config_path: str | None = None, overrides: dict | None = None) -> TuneConfig:
    """Defaults (= configs/train_local_default.yaml), then the YAML file, then `overrides` (same keys)."""
    cfg = TuneConfig()
    path = resolve_config_path(config_path)
    if path is not None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the training config ({exc})") from None
        _merge(cfg, data, "")
        cfg.source = str(path)
    if overrides:
        _merge(cfg, overrides, "")
    _validate(cfg)
    return cfg


def _validate(cfg: TuneConfig) -> None:
    t = cfg.train
    if t.batch_size < 2:
        raise ConfigError("train.batch_size must be at least 2 (in-batch negatives)")
    if t.grad_accum < 1 or t.negatives < 0 or t.temperature <= 0 or t.lr <= 0:
        raise ConfigError("train: grad_accum >= 1, negatives >= 0, temperature > 0 and lr > 0 are required")
    if t.device not in ("auto", "cpu", "cuda", "mps"):
        raise ConfigError("train.device must be auto, cpu, cuda or mps")
    if t.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError("train.precision must be fp32, bf16 or fp16")
    if t.similarity not in ("auto", "cosine", "maxsim"):
        raise ConfigError("train.similarity must be auto, cosine or maxsim")
    if cfg.lora.r < 1:
        raise ConfigError("lora.r must be at least 1")
    if not 0 <= cfg.mining.heldout_fraction < 0.9:
        raise ConfigError("mining.heldout_fraction must be in [0, 0.9)")
    if cfg.mining.positive_docs not in ("strip", "rest"):
        raise ConfigError("mining.positive_docs must be strip or rest")
