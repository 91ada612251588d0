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

from ltd_bert.common.errors import InputError, LtdError
from ltd_bert.text.weights import token_weights

log = logging.getLogger(__name__)

BUILTIN = "builtin"
POOLINGS = ("idf", "mean", "cls")
#: what a text longer than the teacher's window becomes: `windows` pools it over successive
#: windows and combines them (the vector covers the whole text), `truncate` cuts it.
LONG_TEXTS = ("windows", "truncate")
#: where a window prefers to end: after the last sentence end in its second half.
_SENTENCE_ENDS = frozenset("。！？!?；;…\n")

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
    from ltd_bert.teacher.builtin import BUILTIN_NAME, ensure_builtin_teacher

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
    long: str = "windows"  # one of LONG_TEXTS


class Teacher:
    """A transformers encoder with a fast tokenizer, pooled into sentence vectors."""

    def __init__(self, name: str = BUILTIN, device: str = "cpu", dtype: str | None = "auto"):
        """`dtype`: the compute type, None or "fp32", "bf16", "fp16", or "auto" (bf16 on a
        CPU with AMX, where its forward is ~2.8× faster and vectors keep a cosine of ~0.9999
        to fp32; else fp32)."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self.id, self.path = resolve_teacher(name)
        self.device = pick_device(device)
        if dtype == "auto":
            from ltd_bert.common.cpu import auto_precision

            dtype = auto_precision(self.device.type)
        if dtype == "bf16":
            from ltd_bert.common.cpu import require_bf16

            require_bf16("--precision bf16", self.device.type)
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

    def embed_poolings(
        self,
        texts: Sequence[str],
        char_weights: Sequence[np.ndarray] | None,
        settings: PoolingSettings,
        poolings: Sequence[str],
    ) -> tuple[dict[str, np.ndarray], int]:
        """One forward pass, pooled several ways: `{pooling: (B, H)}` and the truncations.

        With `settings.long == "windows"`, a text longer than `max_length` tokens is cut into
        successive windows (ending at a sentence end where one is near); each window is
        pooled like a sentence and the windows are combined by their share of the pooling
        weight (for IDF pooling: the text's IDF mass each window holds), so the vector is
        the IDF-weighted sum over every token of the whole text, each token seen in the
        context of its window. Texts that fit are computed exactly as before.
        """
        if settings.long not in LONG_TEXTS:
            raise InputError(f"long texts must be one of {', '.join(LONG_TEXTS)}")
        spans = (
            self.window_spans(texts, settings)
            if settings.long == "windows"
            else [[(0, len(t))] for t in texts]
        )
        if all(len(s) == 1 for s in spans):
            vecs, _, truncated = self._forward(texts, char_weights, settings, poolings)
            return vecs, truncated
        # Windowed: every window is a text of its own; batches of at most len(texts) windows.
        owner, pieces, piece_w = [], [], []
        for i, text_spans in enumerate(spans):
            for a, b in text_spans:
                owner.append(i)
                pieces.append(texts[i][a:b])
                piece_w.append(None if char_weights is None else char_weights[i][a:b])
        order = sorted(range(len(pieces)), key=lambda j: len(pieces[j]))
        sums = {p: np.zeros((len(texts), self.dim), np.float64) for p in poolings}
        mass = {p: np.zeros(len(texts), np.float64) for p in poolings}
        truncated = 0
        step = max(len(texts), 1)
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            vecs, masses, t = self._forward(
                [pieces[j] for j in idx],
                None if char_weights is None else [piece_w[j] for j in idx],
                settings,
                poolings,
            )
            truncated += t
            for p in poolings:
                for k, j in enumerate(idx):
                    sums[p][owner[j]] += masses[p][k] * vecs[p][k]
                    mass[p][owner[j]] += masses[p][k]
        result = {
            p: (sums[p] / np.maximum(mass[p], 1e-12)[:, None]).astype(np.float32) for p in poolings
        }
        return result, truncated

    def window_spans(
        self, texts: Sequence[str], settings: PoolingSettings
    ) -> list[list[tuple[int, int]]]:
        """`[(start, end), ...]` character spans per text: one span when the text fits the
        window of `max_length` tokens (prefix and special tokens included), else successive
        windows that fit, each ending after a sentence end in its second half if it has one."""
        max_length = min(settings.max_length, self.max_positions)
        prefix = settings.prefix
        spans: list[list[tuple[int, int]]] = [[(0, len(t))] for t in texts]
        # A token covers at least one character (two at worst, with a word-start marker), so
        # only texts of more than half the window need counting.
        check = [i for i, t in enumerate(texts) if 2 * (len(prefix) + len(t)) + 2 > max_length]
        if not check:
            return spans
        enc = self.tokenizer(
            [prefix + texts[i] for i in check],
            add_special_tokens=True,
            truncation=False,
            return_offsets_mapping=True,
        )
        for k, i in enumerate(check):
            offsets = enc["offset_mapping"][k]
            if len(offsets) <= max_length:
                continue
            text = texts[i]
            starts = [a - len(prefix) for a, b in offsets if b > len(prefix)]
            starts = sorted({max(a, 0) for a in starts})
            overhead = len(offsets) - len(starts)
            budget = max(max_length - overhead - 2, 8)  # 2: a re-tokenised window may differ
            out: list[tuple[int, int]] = []
            a, t = 0, 0  # window start (characters), its first token
            while t < len(starts):
                if t + budget >= len(starts):
                    out.append((a, len(text)))
                    break
                end = starts[t + budget]
                cut = max(
                    (
                        c + 1
                        for c in range(end - 1, a + (end - a) // 2, -1)
                        if text[c] in _SENTENCE_ENDS
                    ),
                    default=end,
                )
                out.append((a, cut))
                a = cut
                while t < len(starts) and starts[t] < a:
                    t += 1
            spans[i] = [(x, y) for x, y in out if y > x]
        return spans

    @torch.inference_mode()
    def _forward(
        self,
        texts: Sequence[str],
        char_weights: Sequence[np.ndarray] | None,
        settings: PoolingSettings,
        poolings: Sequence[str],
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
        """One forward pass: `{pooling: (B, H)}`, `{pooling: (B,)}` the pooling mass of each
        text (IDF: the weight its tokens cover before renormalising; mean and CLS: its
        token count), and how many texts were truncated."""
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
        result, masses = {}, {}
        tokens = mask.sum(1).astype(np.float64)
        for pooling in poolings:
            if pooling == "cls":
                vec = hidden[:, 0]
                masses[pooling] = tokens
            elif pooling == "mean":
                m = torch.from_numpy(mask).to(hidden).unsqueeze(-1)
                vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
                masses[pooling] = tokens
            elif pooling == "idf":
                if char_weights is None:
                    raise ValueError("idf pooling needs character weights")
                w = np.zeros(mask.shape, dtype=np.float32)
                total = np.zeros(len(texts), dtype=np.float64)
                for i, cw in enumerate(char_weights):
                    w[i] = token_weights(cw, offsets[i], text_start=len(prefix))
                    total[i] = w[i].sum()
                    if total[i] > 0:
                        w[i] /= total[i]  # renormalise after truncation
                vec = torch.einsum("bt,bth->bh", torch.from_numpy(w).to(hidden), hidden)
                masses[pooling] = total
            else:
                raise InputError(f"--pooling must be one of {', '.join(POOLINGS)}")
            result[pooling] = vec.cpu().numpy().astype(np.float32)
        return result, masses, truncated


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
