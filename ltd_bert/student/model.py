"""The BiLSTM student: character embedding → BiLSTM → the LTD-BERT character weights →
weighted sum → projection to the teacher's dimension; and its self-describing folder.

A model folder holds everything `encode` needs:
    config.json        student config, tool version, teacher id, pooling settings, eps
    model.safetensors  the weights (and the training mean vector, `mean`)
    vocab.json         the character vocabulary (0 = padding, 1 = unknown)
    idf.tsv.gz         the IDF table it was trained with, so weights are identical
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ltd_bert.common.errors import ModelError
from ltd_bert.common.version import __version__
from ltd_bert.models import model_path
from ltd_bert.runtime.base import (  # noqa: F401  (re-exported: their home until the split)
    BATCH_CHARS,
    FORMAT_VERSION,
    MODEL_FILES,
    PAD,
    RUNTIMES,
    SIZES,
    SPACES,
    UNK,
    WINDOW,
    Encoder,
    StudentConfig,
    batch_arrays,
    length_batches,
    read_model_folder,
)

#: the modules that define Student's other loaders (subclasses with `handles`): imported by
#: name on the first `loader_for`, not by `ltd_bert.student`, so that the package and its
#: torch-free modules (base, light) import without torch; by name, as they import this one


#: an LSTM layer's parameters, in the order torch.lstm takes them
LSTM_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class BiLSTMStudent(nn.Module):
    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=True,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        both = 2 * config.hidden_size
        self.proj = nn.Linear(both, config.output_dim) if both != config.output_dim else None
        self.lexicon = (
            LexiconPath(config.lexicon_size, config.lexicon_dim, config.output_dim)
            if config.lexicon_size
            else None
        )
        self.register_buffer("mean", torch.zeros(config.output_dim))
        # the similarity vectors' map (calibrate.py): W·p + mean_scale·mean
        self.register_buffer("similarity", torch.eye(config.output_dim))

    def token_states(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-character BiLSTM outputs, forward and backward joined: (B, T, 2H), zeros at
        padding positions.

        Each direction runs over the padded batch (PyTorch's fused oneDNN LSTM on the CPU),
        the backward one over each text reversed within its own length, so padding always
        comes after a text's characters and its real positions are exact. The same as
        `nn.LSTM` over packed sequences (to ~1e-7), whose CPU backward pass costs time
        quadratic in the length (a 2,048-character batch of 8 took minutes; this, seconds:
        docs/research-record-2026.md) and is 10× slower on sentences too."""
        x = self.dropout(self.embedding(ids))  # (B, T, E)
        if type(self.lstm) is not nn.LSTM:  # int8: PyTorch's dynamic-quantised LSTM
            packed = pack_padded_sequence(
                x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            return self.dropout(out)
        t = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)  # (1, T)
        n = lengths.to(ids.device).clamp(min=1).unsqueeze(1)  # (B, 1): an empty text reads PAD
        real = t < n
        rev = torch.where(real, n - 1 - t, t).unsqueeze(-1)  # reverses within each length
        mask = real.unsqueeze(-1).to(x.dtype)
        layers = self.config.num_layers
        for layer in range(layers):
            ahead = self._direction(x, layer, "")
            reversed_x = torch.gather(x, 1, rev.expand(-1, -1, x.shape[2]))
            back = self._direction(reversed_x, layer, "_reverse")
            back = torch.gather(back, 1, rev.expand(-1, -1, back.shape[2]))
            x = torch.cat([ahead, back], dim=2) * mask  # (B, T, 2H)
            if layer < layers - 1 and self.training and self.lstm.dropout:
                x = nn.functional.dropout(x, self.lstm.dropout, True)
        return self.dropout(x)

    def _direction(self, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One direction (`suffix` "" or "_reverse") of one layer of `self.lstm` over `x`
        (B, T, in): (B, T, H)."""
        lstm = self.lstm
        params = [getattr(lstm, f"{k}_l{layer}{suffix}") for k in LSTM_PARAMS]
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        out, _, _ = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, self.training, False, True)
        return out

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        weights: torch.Tensor,
        word_ids: torch.Tensor | None = None,
    ):
        """Sentence vectors (B, D): weights (B, T) × states, summed; then projected; plus
        the word path's vectors when the model has one and `word_ids` (B, T) are given
        (each character's word: `Lexicon.char_ids`; without them, the network alone).

        Projecting after pooling equals pooling projected states, as weights sum to 1.
        """
        states = self.token_states(ids, lengths)
        pooled = torch.bmm(weights.unsqueeze(1), states).squeeze(1)  # (B, 2H)
        out = self.proj(pooled) if self.proj is not None else pooled
        if self.lexicon is not None and word_ids is not None:
            out = out + self.lexicon(word_ids, weights)
        return out


class LexiconPath(nn.Module):
    """The word path in PyTorch (training): `proj · Σ_t weights_t · embedding[word_t]`,
    the same sum `runtime.lexicon.Lexicon.pooled` makes per word. Row 0 (a word outside the
    lexicon) stays zero; the projection starts at zero, so a model given a lexicon starts
    out computing what it did without one."""

    def __init__(self, size: int, dim: int, out: int):
        super().__init__()
        self.embedding = nn.Embedding(size + 1, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, 0.0, 0.1)
        with torch.no_grad():
            self.embedding.weight[0] = 0
        self.proj = nn.Linear(dim, out, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, word_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        rows = self.embedding(word_ids)  # (B, T, dim)
        return self.proj(torch.bmm(weights.unsqueeze(1).to(rows.dtype), rows).squeeze(1))

    def numpy_lexicon(self, words: Sequence[str]):
        from ltd_bert.runtime.lexicon import Lexicon

        return Lexicon(
            words,
            self.embedding.weight.detach().float().cpu().numpy(),
            self.proj.weight.detach().float().cpu().numpy(),
        )


@torch.no_grad()
def widen(model: BiLSTMStudent, embedding_dim: int, hidden_size: int, seed: int = 0):
    """A copy of `model` with more embedding and LSTM units that computes the same vectors.

    The new units start random but nothing reads them yet: old gates get zero weights from
    new embedding columns and new hidden units, and the projection zero columns from new
    units. Their gradients are not zero, so training brings them in (Net2Net-style growth,
    to give a trained model more capacity without starting over).
    """
    c = model.config
    problem = growth_problem(c, embedding_dim, hidden_size)
    if problem:
        raise ValueError(problem)
    if (embedding_dim, hidden_size) == (c.embedding_dim, c.hidden_size):
        return copy.deepcopy(model)
    new = BiLSTMStudent(replace(c, embedding_dim=embedding_dim, hidden_size=hidden_size))
    g = torch.Generator().manual_seed(seed)
    for prm in new.lstm.parameters():  # new units: PyTorch's own LSTM init, scaled down
        prm.uniform_(-0.5 / hidden_size**0.5, 0.5 / hidden_size**0.5, generator=g)
    e0, h0, h1 = c.embedding_dim, c.hidden_size, hidden_size
    new.embedding.weight.normal_(0, float(model.embedding.weight.std()), generator=g)
    new.embedding.weight[:, :e0] = model.embedding.weight
    new.embedding.weight[PAD] = 0
    # rows of each of the four gates (i, f, g, o) of old units, in the old and new layout
    old_rows = torch.cat([torch.arange(k * h0, (k + 1) * h0) for k in range(4)])
    new_rows = torch.cat([torch.arange(k * h1, k * h1 + h0) for k in range(4)])
    # inputs of layer 0 are embedding columns; of layers above, [forward H, backward H]
    below_old = torch.cat([torch.arange(h0), h1 + torch.arange(h0)])
    for layer in range(c.num_layers):
        in_old = torch.arange(e0) if layer == 0 else torch.arange(2 * h0)
        in_new = torch.arange(e0) if layer == 0 else below_old
        for suffix in ("", "_reverse"):
            ih = getattr(new.lstm, f"weight_ih_l{layer}{suffix}")
            hh = getattr(new.lstm, f"weight_hh_l{layer}{suffix}")
            ih[new_rows] = 0.0
            hh[new_rows] = 0.0
            ih[new_rows[:, None], in_new] = getattr(model.lstm, f"weight_ih_l{layer}{suffix}")[
                old_rows[:, None], in_old
            ]
            hh[new_rows[:, None], torch.arange(h0)] = getattr(
                model.lstm, f"weight_hh_l{layer}{suffix}"
            )[old_rows]
            for b in ("bias_ih", "bias_hh"):
                getattr(new.lstm, f"{b}_l{layer}{suffix}")[new_rows] = getattr(
                    model.lstm, f"{b}_l{layer}{suffix}"
                )[old_rows]
    old_proj = model.proj.weight if model.proj is not None else torch.eye(c.output_dim, 2 * h0)
    old_bias = model.proj.bias if model.proj is not None else torch.zeros(c.output_dim)
    new.proj.weight.zero_()
    new.proj.weight[:, below_old] = old_proj
    new.proj.bias.copy_(old_bias)
    if model.lexicon is not None:  # the word path reads no unit: it stays as it was
        new.lexicon.load_state_dict(model.lexicon.state_dict())
    new.mean.copy_(model.mean)
    new.similarity.copy_(model.similarity)
    return new


@torch.no_grad()
def pooled_states(
    model: BiLSTMStudent,
    index: dict[str, int],
    texts: Sequence[str],
    weights: Sequence[np.ndarray],
    max_chars: int,
    batch_size: int = 256,
) -> np.ndarray:
    """The weighted sums of `model`'s BiLSTM states (N, 2H) of cleaned texts with their
    character weights: what its projection reads."""
    model.eval()
    out = np.zeros((len(texts), 2 * model.config.hidden_size), dtype=np.float32)
    for idx in length_batches(texts, batch_size, max_chars):
        ids, lengths, w = batch_tensors(
            [texts[i] for i in idx], [weights[i] for i in idx], index, max_chars
        )
        states = model.token_states(ids, lengths)
        out[idx] = torch.bmm(w.unsqueeze(1), states).squeeze(1).numpy()
    return out


def unit_importance(model: BiLSTMStudent, states: np.ndarray) -> np.ndarray:
    """How much each unit (2H: forward units, then backward ones) moves the output over
    rows whose pooled `states` (N, 2H) are given: the spread of its pooled state times the
    norm of its projection column."""
    proj = model.proj.weight.detach().float().numpy()
    return states.std(axis=0) * np.linalg.norm(proj, axis=0)


@torch.no_grad()
def narrow(model: BiLSTMStudent, hidden_size: int, score: np.ndarray) -> BiLSTMStudent:
    """A copy of `model` (one layer) that keeps, in each direction, the `hidden_size` units
    of highest `score` (2H: forward units, then backward ones; `unit_importance`): their
    gates' rows, their columns of the recurrent matrices and of the projection. The units
    left out no longer feed the kept ones, so the vectors change: train it after."""
    c = model.config
    if c.num_layers != 1 or model.proj is None:
        raise ValueError("can only narrow a one-layer model with a projection")
    h0 = c.hidden_size
    if not 0 < hidden_size <= h0:
        raise ValueError(f"hidden size {hidden_size}: must be 1 to {h0}")
    new = BiLSTMStudent(replace(c, hidden_size=hidden_size))
    new.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith(("lstm.", "proj."))},
        strict=False,
    )
    columns = []
    for d, suffix in enumerate(("", "_reverse")):
        keep = np.sort(np.argsort(-score[d * h0 : (d + 1) * h0], kind="stable")[:hidden_size])
        keep = torch.from_numpy(keep)
        rows = torch.cat([k * h0 + keep for k in range(4)])
        for name in LSTM_PARAMS:
            old = getattr(model.lstm, f"{name}_l0{suffix}")
            part = old[rows][:, keep] if name == "weight_hh" else old[rows]
            getattr(new.lstm, f"{name}_l0{suffix}").copy_(part)
        columns.append(d * h0 + keep)
    new.proj.weight.copy_(model.proj.weight[:, torch.cat(columns)])
    new.proj.bias.copy_(model.proj.bias)
    return new


@torch.no_grad()
def fit_projection(
    model: BiLSTMStudent, states: np.ndarray, target: np.ndarray, ridge: float
) -> None:
    """Set `model`'s projection to the ridge regression (`ridge` on the weights and the bias
    alike) of `target` (N, D) on pooled `states` (N, 2H, `pooled_states`) and a constant."""
    x = np.hstack([states, np.ones((len(states), 1), np.float32)]).astype(np.float64)
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    solution = np.linalg.solve(gram, x.T @ np.asarray(target, np.float64))  # (2H + 1, D)
    model.proj.weight.copy_(torch.from_numpy(solution[:-1].T.astype(np.float32)))
    model.proj.bias.copy_(torch.from_numpy(solution[-1].astype(np.float32)))


def growth_problem(
    c: StudentConfig, embedding_dim: int, hidden_size: int, narrowing: bool = False
) -> str | None:
    """Why `widen` cannot take a model of config `c` to these sizes; None if it can. With
    `narrowing`, fewer LSTM units are allowed too (`narrow` first, for a one-layer model
    that keeps a projection)."""
    if narrowing and hidden_size < c.hidden_size:
        if c.num_layers != 1 or 2 * c.hidden_size == c.output_dim:
            layers = f"{c.num_layers} layer{'s' if c.num_layers > 1 else ''}"
            has = "a" if 2 * c.hidden_size != c.output_dim else "no"
            return (
                "can only narrow a one-layer model with a projection; this one has "
                f"{layers} and {has} projection"
            )
        if 2 * hidden_size == c.output_dim:
            return (
                f"hidden size {hidden_size}: 2 × {hidden_size} = {c.output_dim} outputs leaves "
                "no projection to fit again; choose another size"
            )
        hidden_size = c.hidden_size
    if embedding_dim < c.embedding_dim or hidden_size < c.hidden_size:
        return (
            f"can only grow the model ({c.embedding_dim}/{c.hidden_size}), not shrink it to "
            f"{embedding_dim}/{hidden_size}"
        )
    grows = (embedding_dim, hidden_size) != (c.embedding_dim, c.hidden_size)
    if grows and 2 * hidden_size == c.output_dim:  # no projection to hide new units behind
        return (
            f"hidden size {hidden_size}: 2 × {hidden_size} = {c.output_dim} outputs leaves no "
            "projection to grow into; choose another size"
        )
    return None


def with_default_buffers(state: dict[str, torch.Tensor], config: StudentConfig) -> dict:
    """A state dict of a folder written before the similarity map existed: the identity."""
    if "similarity" not in state:
        state = dict(state, similarity=torch.eye(config.output_dim))
    return state


def build_vocab(texts: Iterable[str], min_count: int = 1, max_vocab: int | None = None):
    """Characters by frequency (ties by code point): [<pad>, <unk>, ...]."""
    counts = Counter()
    for t in texts:
        counts.update(t)
    chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    if max_vocab is not None:
        chars = chars[: max(max_vocab - 2, 0)]
    return ["<pad>", "<unk>", *chars]


def batch_tensors(
    texts: Sequence[str], weights: Sequence[np.ndarray], index: dict[str, int], max_chars: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ids (B, T), lengths (B,), weights (B, T) as tensors: `base.batch_arrays`."""
    ids, lengths, w = batch_arrays(texts, weights, index, max_chars)
    return torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(w)


def word_id_tensor(student: Student, texts: Sequence[str], ids: torch.Tensor):
    """The word ids (B, T) of a padded batch `ids` for the student's word path; None for a
    model without one (its forward then runs the network alone)."""
    lexicon = student.lexicon
    if lexicon is None:
        return None
    return torch.from_numpy(lexicon.padded_char_ids(texts, student.weighter.words, ids.shape[1]))


class Student(Encoder):
    """A trained student: `Student.load(path).encode(["一句话", ...])` → (N, D) numpy."""

    #: whether `encode` runs the model through `fused.FusedBiLSTM` (the int8 student runs
    #: its quantised modules instead)
    fused: ClassVar[bool] = True

    def __init__(
        self,
        model: BiLSTMStudent,
        vocab: list[str],
        weighter,
        meta: dict[str, Any],
        precision: str = "auto",
    ):
        from ltd_bert.student.fused import resolve_precision

        self.model = model.eval()
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        self.weighter = weighter
        self.meta = meta
        self.max_chars = int(meta.get("max_chars", 1024))
        self.window = int(meta.get("window", WINDOW))
        self.precision = resolve_precision(precision, model.config.hidden_size)
        self._fused = None  # (the parameters' versions, FusedBiLSTM)
        self._lexicon = None  # (the word path's parameters' versions, Lexicon)

    @property
    def dim(self) -> int:
        return self.model.config.output_dim

    @property
    def mean(self) -> np.ndarray:
        return self.model.mean.cpu().numpy()

    #: the loader classes `Student.load` chooses among besides this one (float32): every
    #: subclass that defines `handles` joins on definition; `ltd_bert.student` imports them
    loaders: ClassVar[list[type[Student]]] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "handles" in cls.__dict__:
            Student.loaders.append(cls)

    @classmethod
    def handles(cls, path: Path, meta: dict[str, Any], runtime: str | None) -> bool:
        """Whether this class loads `path` (a model folder with config.json `meta`, or a file
        in one) for `runtime`. The float32 Student is what loads when no loader does."""
        return False

    @classmethod
    def loader_for(cls, path: str | os.PathLike, runtime: str | None = None) -> type[Student]:
        """The class `Student.load` uses for `path`: the first of `loaders` that handles it,
        else Student (the float32 model)."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        p = model_path(path)
        folder = p.parent if p.is_file() else p
        try:
            meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}  # the float32 loader says what is wrong with the folder
        if not isinstance(meta, dict):
            meta = {}
        for loader in cls.loaders:
            if loader.handles(p, meta, runtime):
                return loader
        if runtime == "numpy":
            from ltd_bert.runtime.light import LightStudent

            return LightStudent
        return Student

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        runtime: str | None = None,
        precision: str = "auto",
        **options,
    ) -> Encoder:
        """Any model folder, by the loader its contents call for: an int8 folder (`ltd
        quantize`, config.json `quantized`) gives a `QuantizedStudent`; `runtime="onnx"` or
        the path of a .onnx file an `OnnxStudent` (`options`: its `onnx_path`, `threads`);
        `runtime="numpy"` a `LightStudent` (float32 without torch); otherwise the float32
        Student. Every one encodes with the same `encode`.

        `path` is a folder or file, or the name of a model shipped in `ltd_bert/models`
        (`"zh-small"`; a path that exists wins); None loads the shipped default.

        `precision` (the float32 model in PyTorch): "fp32", "bf16" (the recurrent products
        in bfloat16: ~2× faster per thread on CPUs with AMX, cosine ~0.999999 to fp32),
        "int8" (int8 recurrent products: ~1.1× on AVX2, cosine ~0.99997) or "auto" (bf16
        where the CPU has AMX, else int8 on x86); see `fused.py`."""
        path = model_path(path)
        if cls is Student:
            loader = cls.loader_for(path, runtime)
            if loader is not Student:
                return loader.load(path, **options)
        if options:
            raise TypeError(f"{cls.__name__}.load: unexpected options {sorted(options)}")
        p = Path(path)
        meta, config, vocab, weighter = read_model_folder(p)
        if meta.get("quantized"):  # not through the int8 loader (a subclass's own load)
            raise ModelError(f"{p}: an int8 model folder (load it with Student.load)")
        from safetensors.torch import load_file

        from ltd_bert.runtime.lexicon import load_lexicon

        lexicon = load_lexicon(p, config)
        model = BiLSTMStudent(config)
        try:
            state = load_file(str(p / "model.safetensors"))
            if lexicon is not None:
                state.update(lexicon_state(lexicon))
            model.load_state_dict(with_default_buffers(state, config))
        except Exception as exc:  # safetensors raises several kinds
            raise ModelError(f"{p}/model.safetensors: cannot load ({exc})") from None
        student = cls(model, vocab, weighter, meta, precision=precision)
        student.lexicon = lexicon
        return student

    def save(self, path: str | os.PathLike, extra_files: Sequence[Path] = ()) -> None:
        """Write the folder atomically: a temporary sibling, then renamed into place."""
        save_model_folder(
            path,
            self.model,
            self.vocab,
            self.weighter.idf.source,
            self.meta,
            extra_files,
            lexicon=self.current_lexicon(),
        )

    def current_lexicon(self):
        """The word path as the model's weights are now (rebuilt when they change)."""
        path = getattr(self.model, "lexicon", None)
        if not isinstance(path, LexiconPath) or self.lexicon is None:
            return self.lexicon
        key = tuple((id(p), p._version) for p in path.parameters())
        if self._lexicon is None or self._lexicon[0] != key:
            self._lexicon = (key, path.numpy_lexicon(self.lexicon.words))
        return self._lexicon[1]

    def fused_network(self):
        """The model's `FusedBiLSTM`, prepared again whenever its weights have changed."""
        from ltd_bert.student.fused import FusedBiLSTM

        key = tuple((id(p), p._version) for p in self.model.parameters())
        if self._fused is None or self._fused[0] != key:
            self._fused = (key, FusedBiLSTM(self.model, self.precision))
        return self._fused[1]

    @torch.inference_mode()
    def network_prepared(
        self, texts: Sequence[str], weights: Sequence[np.ndarray], batch_size: int = 256
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        forward = self.fused_network().forward if self.fused else self._model_forward
        for idx in length_batches(texts, batch_size, self.max_chars):
            ids, lengths, w = batch_arrays(
                [texts[i] for i in idx], [weights[i] for i in idx], self.index, self.max_chars
            )
            out[idx] = forward(ids, lengths, w)
        return out

    def _model_forward(self, ids: np.ndarray, lengths: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The module's own forward on one padded batch (the int8 model's quantised one)."""
        tensors = (torch.from_numpy(a) for a in (ids, lengths, w))
        return self.model(*tensors).numpy()

    @property
    def similarity_map(self) -> np.ndarray:
        """The (D, D) map the similarity vectors apply to the predictions (calibrate.py)."""
        return self.model.similarity.cpu().numpy()


#: the float tensors a model folder keeps in float32 (small, and sums of many rows); the
#: other float weights are stored as float16 and read back into float32: the vectors move
#: by ~1e-4 relative (cosine to the float32 weights ≥ 0.99999), the folder is half the size
FULL_PRECISION = ("mean", "similarity")


def stored_float(name: str, t: torch.Tensor) -> torch.Tensor:
    """How a float folder stores the tensor `name`: float16 unless FULL_PRECISION."""
    if t.dtype == torch.float32 and name not in FULL_PRECISION:
        return t.half()
    return t


@torch.no_grad()
def round_to_stored(model: BiLSTMStudent) -> None:
    """Round the model's weights as its folder will store them (float16; the word path's
    rows int8), so what is validated and calibrated before saving is what loads."""
    from ltd_bert.runtime.lexicon import quantize_rows

    for name, t in model.state_dict().items():
        if name == "lexicon.embedding.weight":
            q, scale = quantize_rows(t.float().cpu().numpy())
            t.copy_(torch.from_numpy(q.astype(np.float32) * scale[:, None]))
        elif not name.startswith("lexicon.") and stored_float(name, t).dtype != t.dtype:
            t.copy_(t.half())


def lexicon_state(lexicon) -> dict[str, torch.Tensor]:
    """A `Lexicon`'s arrays as BiLSTMStudent state entries (`lexicon.*`)."""
    return {
        "lexicon.embedding.weight": torch.from_numpy(lexicon.embedding.copy()),
        "lexicon.proj.weight": torch.from_numpy(lexicon.proj_t.T.copy()),
    }


def save_model_folder(
    path: str | os.PathLike,
    model: BiLSTMStudent,
    vocab: list[str],
    idf_file: str,
    meta: dict[str, Any],
    extra_files: Sequence[Path] = (),
    lexicon=None,
) -> None:
    """The folder, atomically. The word path (`lexicon`, a `runtime.lexicon.Lexicon`, which
    a model with one must be given) goes to lexicon.json and lexicon.safetensors, the rest
    of the state to model.safetensors."""
    from safetensors.torch import save_file

    from ltd_bert.text.idf import jieba_idf_path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        meta = dict(
            meta,
            student=asdict(model.config),
            tool_version=__version__,
            format_version=FORMAT_VERSION,
        )
        (tmp / "config.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in model.state_dict().items()
            if not k.startswith("lexicon.")
        }
        if not meta.get("quantized"):  # float weights in half the bytes (docs/speed.md)
            state = {k: stored_float(k, v) for k, v in state.items()}
        save_file(state, str(tmp / "model.safetensors"))
        if model.config.lexicon_size:
            if lexicon is None:
                raise ValueError("a model with a word path is saved with its lexicon")
            lexicon.save(tmp)
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        src = jieba_idf_path() if idf_file == "jieba" else Path(idf_file)
        if src.suffix == ".gz":
            shutil.copyfile(src, tmp / "idf.tsv.gz")
        else:
            with open(src, "rb") as fin, gzip.GzipFile(tmp / "idf.tsv.gz", "wb", mtime=0) as fo:
                shutil.copyfileobj(fin, fo)
        for extra in extra_files:
            if Path(extra).is_file():
                shutil.copyfile(extra, tmp / Path(extra).name)
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; an existing `out` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def random_batch(
    vocab_size: int, n: int = 16, max_len: int = 40, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded batch as batch_tensors makes it: random characters (ids ≥ 2), lengths from 1
    to max_len (the first row the longest), random weights summing to 1, 0 on padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (n,), generator=g)
    lengths[0] = max_len
    t = torch.arange(max_len).unsqueeze(0)
    real = t < lengths.unsqueeze(1)
    ids = torch.randint(2, max(vocab_size, 3), (n, max_len), generator=g) * real
    w = torch.rand(n, max_len, generator=g) * real
    return ids, lengths, w / w.sum(1, keepdim=True)
