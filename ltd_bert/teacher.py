"""Teachers: load a transformers encoder (local folder, hub id, or the built-in one) and
pool its token states into sentence vectors, by default with the LTD-BERT character weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltd_bert.errors import InputError, LtdError
from ltd_bert.weights import token_weights

log = logging.getLogger(__name__)

BUILTIN = "builtin"
POOLINGS = ("idf", "mean", "cls")

# Instruction prefixes of known teachers, matched on the teacher id (lower case).
KNOWN_PREFIXES = {"e5": "query: "}


#: the configuration fields that decide what the encoder computes. The hash of the teacher's
#: configuration is taken over these alone: `to_dict()` also carries the transformers version
#: and defaults that come and go between releases, which made the same teacher look like
#: another one after an upgrade.
ARCH_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "hidden_act",
    "layer_norm_eps",
    "pad_token_id",
)


def config_hash(config: dict) -> str:
    """A short hash of the teacher configuration that does not change with the transformers
    version (see `ARCH_KEYS`)."""
    arch = {k: config[k] for k in ARCH_KEYS if config.get(k) is not None}
    return hashlib.sha256(json.dumps(arch, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_prefix(teacher_id: str) -> str:
    name = teacher_id.lower().rstrip("/").rsplit("/", 1)[-1]
    for key, prefix in KNOWN_PREFIXES.items():
        if key in name.split("-") or name.startswith(key) or f"-{key}-" in name:
            return prefix
    return ""


def resolve_teacher(name: str) -> tuple[str, str]:
    """`(teacher_id, path_or_hub_id)`: `builtin` is converted on first use into a cache
    folder; an existing folder is used as is; anything else is a hub id."""
    from ltd_bert.builtin import BUILTIN_NAME, ensure_builtin_teacher

    if name in (BUILTIN, BUILTIN_NAME):  # the id a teacher file records for the built-in one
        return BUILTIN_NAME, str(ensure_builtin_teacher())
    p = Path(name)
    if p.exists():
        if not (p / "config.json").is_file():
            raise InputError(f"{p}: not a transformers model folder (no config.json)")
        return p.resolve().name, str(p.resolve())
    return name, name


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available here")
    return torch.device(device)


@dataclass
class PoolingSettings:
    pooling: str = "idf"
    layer: int = -1
    prefix: str = ""
    max_length: int = 256


class Teacher:
    """A transformers encoder with a fast tokenizer, pooled into sentence vectors."""

    def __init__(self, name: str = BUILTIN, device: str = "cpu", dtype: str | None = None):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self.id, self.path = resolve_teacher(name)
        self.device = pick_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            try:
                model = AutoModel.from_pretrained(self.path, add_pooling_layer=False)
            except TypeError:
                model = AutoModel.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise LtdError(f"cannot load teacher {name!r}: {str(exc).splitlines()[0]}") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError(f"teacher {name!r}: needs a fast tokenizer (offset mapping)")
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype or "")
        if torch_dtype is not None:
            model = model.to(torch_dtype)
        self.model = model.to(self.device).eval()
        self.config_hash = config_hash(self.model.config.to_dict())
        self.dim = int(self.model.config.hidden_size)
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 512))

    def embed(
        self,
        texts: Sequence[str],
        char_weights: Sequence[np.ndarray] | None,
        settings: PoolingSettings,
    ) -> tuple[np.ndarray, int]:
        """Sentence vectors of one batch of cleaned texts, and how many were truncated."""
        vecs, truncated = self.embed_poolings(texts, char_weights, settings, [settings.pooling])
        return vecs[settings.pooling], truncated

    @torch.inference_mode()
    def embed_poolings(
        self,
        texts: Sequence[str],
        char_weights: Sequence[np.ndarray] | None,
        settings: PoolingSettings,
        poolings: Sequence[str],
    ) -> tuple[dict[str, np.ndarray], int]:
        """One forward pass, pooled several ways: `{pooling: (B, H)}` and the truncations."""
        prefix = settings.prefix
        full = [prefix + t for t in texts]
        max_length = min(settings.max_length, self.max_positions)
        enc = self.tokenizer(
            full,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        offsets = enc.pop("offset_mapping")  # (B, T, 2)
        mask = enc["attention_mask"]
        truncated = int(sum(int(offsets[i, :, 1].max()) < len(f) for i, f in enumerate(full)))
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in enc.items()}
        out = self.model(**inputs, output_hidden_states=settings.layer != -1)
        hidden = (
            out.last_hidden_state if settings.layer == -1 else out.hidden_states[settings.layer]
        )
        hidden = hidden.float()  # (B, T, H)
        result = {}
        for pooling in poolings:
            if pooling == "cls":
                vec = hidden[:, 0]
            elif pooling == "mean":
                m = torch.from_numpy(mask).to(hidden).unsqueeze(-1)
                vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            elif pooling == "idf":
                if char_weights is None:
                    raise ValueError("idf pooling needs character weights")
                w = np.zeros(mask.shape, dtype=np.float32)
                for i, cw in enumerate(char_weights):
                    w[i] = token_weights(cw, offsets[i], text_start=len(prefix))
                    total = w[i].sum()
                    if total > 0:
                        w[i] /= total  # renormalise after truncation
                vec = torch.einsum("bt,bth->bh", torch.from_numpy(w).to(hidden), hidden)
            else:
                raise InputError(f"--pooling must be one of {', '.join(POOLINGS)}")
            result[pooling] = vec.cpu().numpy().astype(np.float32)
        return result, truncated


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
