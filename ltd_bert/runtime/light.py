"""`LightStudent`: a float32 model folder run with numpy alone, no torch.

Importing torch takes about 2 s of CPU on the project machine, more than the whole budget of
`ltd similarity A B`; this runtime gives the same vectors (to 1e-6) from the same folder
with numpy, so the command line answers short requests without it (`Student.load(path,
runtime="numpy")`; `ltd similarity A B` and small `ltd encode` inputs use it).

The first layer's input projection is folded into a per-character table once enough
characters have been encoded to pay for it (`FOLD_AFTER`): for each character c and
direction, `embedding[c] @ W_ih^T + b_ih + b_hh`, so a character's gate inputs are one row
lookup instead of an (E × 4H) product. The sigmoid gates' rows are halved at load, so one
`tanh` over all four gates gives them all (`sigmoid(x) = 0.5 tanh(x / 2) + 0.5`; halving is
exact in floating point). The recurrence runs over sentences sorted longest first, so the
rows still running at a step are always the first ones, and both directions run in one loop
(the backward one fed each sentence reversed within its own length, as `fused.FusedBiLSTM`
does): one (2, n, H) × (2, H, 4H) product and one pass of each elementwise step for both,
~1.15× the two loops' speed for zh-tiny.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltd_bert.common.errors import ModelError
from ltd_bert.models import model_path
from ltd_bert.runtime.base import (
    WINDOW,
    Encoder,
    StudentConfig,
    batch_arrays,
    length_batches,
    read_model_folder,
)
from ltd_bert.runtime.lexicon import load_lexicon

log = logging.getLogger(__name__)

#: characters encoded (in all) after which the first layer's gate table is built: it costs
#: about as much as projecting vocab_size × FOLD_AFTER characters one by one
FOLD_AFTER = 1.0
DIRECTIONS = ("", "_reverse")


class LightStudent(Encoder):
    """The float32 student in numpy: `LightStudent.load(path).encode(sentences)` gives the
    vectors `Student.load(path).encode(sentences)` gives, to 1e-6."""

    def __init__(
        self,
        tensors: dict[str, np.ndarray],
        config: StudentConfig,
        vocab: list[str],
        weighter,
        meta: dict[str, Any],
    ):
        self.config = config
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        self.weighter = weighter
        self.meta = meta
        self.max_chars = int(meta.get("max_chars", 1024))
        self.window = int(meta.get("window", WINDOW))
        self._embedding = tensors["embedding.weight"].astype(np.float32)
        self._ih, self._bias, hh = gate_weights(tensors, config)
        self._hh = [np.stack(layer) for layer in hh]  # per layer (2, H, 4H): both directions
        self._proj = tensors.get("proj.weight")
        self._proj_bias = tensors.get("proj.bias")
        self._mean = tensors["mean"].astype(np.float32)
        sim = tensors.get("similarity")
        self._similarity = sim if sim is not None else np.eye(config.output_dim, dtype=np.float32)
        self._table: np.ndarray | None = None
        self._chars = 0

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **options) -> LightStudent:
        """A float32 model folder (or a shipped model's name; None: the default)."""
        if options:
            raise TypeError(f"LightStudent.load: unexpected options {sorted(options)}")
        p = Path(model_path(path))
        meta, config, vocab, weighter = read_model_folder(p)
        if meta.get("quantized"):
            raise ModelError(
                f"{p}: an int8 model folder; the numpy runtime runs float32 models only "
                "(load it with Student.load)"
            )
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(p / "model.safetensors"))
            tensors = {  # float16 as stored (student/model.py `stored_float`) → float32
                k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in tensors.items()
            }
            student = cls(tensors, config, vocab, weighter, meta)
        except Exception as exc:  # safetensors raises several kinds; a missing key KeyError
            raise ModelError(f"{p}/model.safetensors: cannot load ({exc})") from None
        student.lexicon = load_lexicon(p, config)
        return student

    @staticmethod
    def can_load(path: str | os.PathLike) -> bool:
        """Whether `path` is a float32 model folder (what this runtime runs); anything else
        (int8, an .onnx file, a broken folder) is for `Student.load` to load or report."""
        try:
            meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and not meta.get("quantized")

    @property
    def dim(self) -> int:
        return self.config.output_dim

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def similarity_map(self) -> np.ndarray:
        return self._similarity

    def fold(self) -> None:
        """Build the first layer's per-character gate table (both directions)."""
        if self._table is None:  # both directions: rows [0, V) forward, [V, 2V) backward
            self._table = np.concatenate(first_layer_table(self._embedding, self._ih, self._bias))

    def network_prepared(
        self, texts: Sequence[str], weights: Sequence[np.ndarray], batch_size: int = 256
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        self._chars += sum(min(len(t), self.max_chars) for t in texts)
        if self._table is None and self._chars >= FOLD_AFTER * len(self.vocab):
            self.fold()
        for idx in length_batches(texts, batch_size, self.max_chars):
            ids, lengths, w = batch_arrays(
                [texts[i] for i in idx], [weights[i] for i in idx], self.index, self.max_chars
            )
            out[idx] = self.forward(ids, lengths, w)
        return out

    def forward(self, ids: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Sentence vectors (B, D) of a padded batch (`batch_arrays`)."""
        order = np.argsort(-lengths, kind="stable")
        if (order != np.arange(len(order))).any():  # the recurrence wants longest first
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            return self.forward(ids[order], lengths[order], weights[order])[back]
        layers = self.config.num_layers
        rev_ids = reversed_within(ids, lengths)
        states = None  # a layer's states (2, B, T, H), for the next layer
        for layer in range(layers):
            last = layer == layers - 1
            if layer == 0 and self._table is not None:
                # (T, 2, B): each step's ids of both directions into the stacked table
                both = np.stack([ids, rev_ids + len(self.vocab)]).transpose(2, 0, 1)
                both = np.ascontiguousarray(both)

                def gates(t, n, both=both, table=self._table):
                    return table[both[t, :, :n]]

            else:
                if layer == 0:
                    x, xr = self._embedding[ids], self._embedding[rev_ids]
                else:  # the previous layer's states at their positions (B, T, 2H)
                    x = np.concatenate([states[0], reversed_within(states[1], lengths)], -1)
                    xr = reversed_within(x, lengths)
                ih, bias = self._ih[layer], self._bias[layer]
                x2 = np.stack([x @ ih[0] + bias[0], xr @ ih[1] + bias[1]])  # (2, B, T, 4H)

                def gates(t, n, x2=x2):
                    return x2[:, :n, t]

            hh = self._hh[layer]
            if last:
                pool = np.stack([weights, reversed_within(weights, lengths)]).astype(np.float32)
                pooled = _recur(gates, lengths, hh, pool)
                pooled = np.concatenate([pooled[0], pooled[1]], 1)  # (B, 2H)
                if self._proj is None:
                    return pooled
                return pooled @ self._proj.T + self._proj_bias
            states = _recur(gates, lengths, hh, None)
        raise AssertionError("unreachable")


def reversed_within(a: np.ndarray, lengths: np.ndarray, fill=0) -> np.ndarray:
    """Each row of `a` (B, T, ...) reversed within its own length; `fill` after it."""
    T = a.shape[1]
    ar = np.arange(T)[None, :]
    inside = ar < lengths[:, None]
    rev = np.where(inside, lengths[:, None] - 1 - ar, 0)
    out = np.take_along_axis(a, rev.reshape(rev.shape + (1,) * (a.ndim - 2)), 1)
    out[~inside] = fill
    return out


def gate_weights(tensors: dict[str, np.ndarray], config: StudentConfig, sigmoid_first=False):
    """The LSTM's weights as the inference loops use them, per layer and direction (forward,
    backward): W_ih^T, b_ih + b_hh and W_hh^T (float32, contiguous). By default in
    PyTorch's gate order (i, f, g, o) with the rows of the sigmoid gates (i, f, o) halved, so
    that one `tanh` of the gate sums gives all four gates (sigmoid(x) = 0.5 tanh(x / 2) +
    0.5; halving is exact in floating point); `sigmoid_first`: the gates reordered (i, f,
    o, g) and not halved, for one `sigmoid` of the first three and one `tanh` of the last.
    `tensors`: the model's state dict as numpy arrays."""
    H = config.hidden_size
    if sigmoid_first:
        rows = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]
        scale = np.ones(4 * H, dtype=np.float32)
    else:
        rows = np.arange(4 * H)
        scale = np.ones(4 * H, dtype=np.float32)
        scale[: 2 * H] = 0.5
        scale[3 * H :] = 0.5

    def rows_t(name: str) -> np.ndarray:
        return np.ascontiguousarray((tensors[name][rows] * scale[:, None]).T)

    ih, bias, hh = [], [], []
    for layer in range(config.num_layers):
        keys = [f"l{layer}{d}" for d in DIRECTIONS]
        ih.append([rows_t(f"lstm.weight_ih_{k}") for k in keys])
        hh.append([rows_t(f"lstm.weight_hh_{k}") for k in keys])
        bias.append(
            [
                (
                    (tensors[f"lstm.bias_ih_{k}"] + tensors[f"lstm.bias_hh_{k}"])[rows] * scale
                ).astype(np.float32)
                for k in keys
            ]
        )
    return ih, bias, hh


def first_layer_table(embedding: np.ndarray, ih, bias) -> list[np.ndarray]:
    """Per direction, every character's first-layer gate inputs: embedding @ W_ih^T + biases
    (with `gate_weights`' rows), so a character's gate inputs are one row lookup."""
    return [embedding @ w + b for w, b in zip(ih[0], bias[0], strict=True)]


def _recur(gates, lengths: np.ndarray, hh: np.ndarray, pool: np.ndarray | None) -> np.ndarray:
    """Both directions of one LSTM layer at once, rows sorted longest first, the backward
    direction fed each row reversed within its own length (so at each step both run the
    same rows): `gates(t, n)` gives step t's gate inputs (2, n, 4H; sigmoid rows halved),
    `hh` the recurrent weights (2, H, 4H). The states (2, B, T, H) in the order run, or with
    `pool` (2, B, T) their weighted sums (2, B, H). A row starts from zeros."""
    B = len(lengths)
    T = int(lengths.max(initial=0))
    H = hh.shape[1]
    h = np.zeros((2, B, H), dtype=np.float32)
    c = np.zeros((2, B, H), dtype=np.float32)
    states = None if pool is not None else np.zeros((2, B, max(T, 1), H), dtype=np.float32)
    pooled = np.zeros((2, B, H), dtype=np.float32) if pool is not None else None
    running = np.searchsorted(-lengths, -np.arange(T), side="left")  # rows with length > t
    for t in range(T):
        n = int(running[t])
        g = np.matmul(h[:, :n], hh)
        g += gates(t, n)
        np.tanh(g, out=g)
        # sigmoid(a) = 0.5 tanh(a/2) + 0.5 (a/2 is what the halved rows hold)
        for s in (g[..., : 2 * H], g[..., 3 * H :]):
            s *= 0.5
            s += 0.5
        cn = c[:, :n]
        cn *= g[..., H : 2 * H]  # f·c + i·g
        cn += g[..., :H] * g[..., 2 * H : 3 * H]
        hn = np.tanh(cn)
        hn *= g[..., 3 * H :]  # o·tanh(c)
        h[:, :n] = hn
        if pooled is not None:
            pooled[:, :n] += pool[:, :n, t, None] * hn
        else:
            states[:, :n, t] = hn
    return pooled if pooled is not None else states
