"""Int8 students: a model folder about 4× smaller whose vectors stay within ~1 % of float32.

Every 2-D weight (the character embedding, the LSTM's input and recurrent matrices, the
projection) is stored as int8 with one float32 scale per row: `scale = max|row| / 127`,
`q = round(w / scale)` in [-127, 127]. Biases and the mean vector stay float32.

The folder is an ordinary model folder whose config.json says `"quantized": "int8"`:
model.safetensors holds `NAME` (int8) and `NAME.scale` (float32) for each quantised weight.
At load the embedding stays int8 (`Int8Embedding`, dequantised row by row as it is looked
up) and the LSTM and projection become PyTorch dynamic-quantised modules
(`torch.ao.quantization.quantize_dynamic`, per-row symmetric qint8). Rebuilding them from
`q * scale` gives back exactly the stored integers and scales, so loading, saving and
loading again changes nothing.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltd_bert.common.errors import ModelError
from ltd_bert.runtime.lexicon import load_lexicon
from ltd_bert.student.model import (
    BiLSTMStudent,
    Student,
    StudentConfig,
    read_model_folder,
    save_model_folder,
    with_default_buffers,
)

SCHEME = "int8"
#: 2-D tensors kept in float32: the similarity map is applied outside the network, once
FLOAT_TENSORS = ("similarity",)
QMAX = 127  # symmetric: -127..127, so 0 is exact and the range is the same on both sides


def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (q int8 (R, C), scale float32 (R,)); w ≈ q * scale[:, None].

    An all-zero row (the padding character) gets scale 1 and zeros.
    """
    w = w.detach().float()
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    q = torch.round(w / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8)
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A float state dict → the int8 file layout: each 2-D float tensor becomes `NAME` (int8)
    and `NAME.scale`; everything else is kept as it is."""
    out = {}
    for name, t in state.items():
        if t.dim() == 2 and t.is_floating_point() and name not in FLOAT_TENSORS:
            out[name], out[f"{name}.scale"] = quantize_rows(t)
        else:
            out[name] = t.detach().cpu().contiguous()
    return out


def dequantize_state(qstate: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The int8 file layout → a float state dict that `BiLSTMStudent.load_state_dict` takes."""
    out = {}
    for name, t in qstate.items():
        if name.endswith(".scale"):
            continue
        if t.dtype == torch.int8:
            scale = qstate.get(f"{name}.scale")
            if scale is None or scale.shape != (t.shape[0],):
                raise ValueError(f"{name}: int8 tensor without a matching {name}.scale")
            out[name] = dequantize_rows(t, scale)
        else:
            out[name] = t
    return out


class Int8Embedding(nn.Module):
    """An embedding table kept as int8 with a scale per row; rows are dequantised on lookup."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        self.register_buffer("weight", q.to(torch.int8).contiguous())
        self.register_buffer("scale", scale.float().contiguous())
        self.num_embeddings, self.embedding_dim = q.shape
        self.padding_idx = padding_idx

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float() * self.scale[ids].unsqueeze(-1)  # (B, T, E)


def _qconfig():
    from torch.ao.quantization import PerChannelMinMaxObserver, PlaceholderObserver, QConfig

    # The same rule as quantize_rows (max|row| / 127), so the stored integers come back as
    # they are when PyTorch quantises the dequantised weights again.
    return QConfig(
        activation=PlaceholderObserver.with_args(dtype=torch.quint8, is_dynamic=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8,
            qscheme=torch.per_channel_symmetric,
            quant_min=-QMAX,
            quant_max=QMAX,
        ),
    )


def build_quantized_model(config: StudentConfig, qstate: dict[str, torch.Tensor]) -> BiLSTMStudent:
    """A BiLSTMStudent that computes in int8: Int8Embedding, dynamic-quantised LSTM and Linear."""
    from torch.ao.quantization import quantize_dynamic

    config = replace(config, lexicon_size=0, lexicon_dim=0)  # the word path stays float
    model = BiLSTMStudent(config)
    model.load_state_dict(with_default_buffers(dequantize_state(qstate), config))
    model.embedding = Int8Embedding(
        qstate["embedding.weight"], qstate["embedding.weight.scale"], model.embedding.padding_idx
    )
    model.eval()
    qconfig = _qconfig()
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.LSTM: qconfig, nn.Linear: qconfig}, dtype=torch.qint8)


class _Tensors:
    """What save_model_folder needs from a model: its config and the tensors to write."""

    def __init__(self, config: StudentConfig, tensors: dict[str, torch.Tensor]):
        self.config = config
        self.tensors = tensors

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.tensors


class QuantizedStudent(Student):
    """A Student whose weights are int8; `save` writes the int8 folder back unchanged."""

    fused = False  # its LSTM and projection are PyTorch's dynamic-quantised modules

    def __init__(
        self, qstate: dict[str, torch.Tensor], config: StudentConfig, vocab, weighter, meta
    ):
        super().__init__(build_quantized_model(config, qstate), vocab, weighter, meta)
        self.qstate = qstate  # as stored, so that save() writes the same file
        self.config = config  # with the word path's sizes (`lexicon`, float: not in the model)

    @classmethod
    def handles(cls, path: Path, meta: dict, runtime: str | None) -> bool:
        """`Student.load` of a folder whose config.json marks it int8 (PyTorch runtime)."""
        return runtime != "onnx" and bool(meta.get("quantized"))

    @classmethod
    def load(cls, path: str | os.PathLike, **options) -> QuantizedStudent:
        if options:
            raise TypeError(f"QuantizedStudent.load: unexpected options {sorted(options)}")
        return load_quantized(path)

    def save(self, path: str | os.PathLike, extra_files: Sequence[Path] = ()) -> None:
        meta = dict(self.meta, quantized=SCHEME)
        save_model_folder(
            path,
            _Tensors(self.config, self.qstate),
            self.vocab,
            self.weighter.idf.source,
            meta,
            extra_files,
            lexicon=self.lexicon,
        )


def _read_folder(p: Path):
    """The folder read and checked as `Student.load` does, and marked int8."""
    meta, config, vocab, weighter = read_model_folder(p)
    if not meta.get("quantized"):
        raise ModelError(f"{p}: not an int8 model folder (load it with Student.load)")
    if meta.get("quantized") != SCHEME:
        raise ModelError(
            f"{p}: quantisation {meta.get('quantized')!r} is not known to this ltd-bert "
            f"(it reads {SCHEME!r}): upgrade ltd-bert"
        )
    return meta, config, vocab, weighter


def is_quantized(path: str | os.PathLike) -> bool:
    """Whether a folder's config.json marks it int8 (False if there is no readable config)."""
    try:
        meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(meta.get("quantized"))


def load_quantized(path: str | os.PathLike) -> QuantizedStudent:
    """Load an int8 model folder (written by `quantize_model`)."""
    from safetensors.torch import load_file

    p = Path(path)
    meta, config, vocab, weighter = _read_folder(p)
    try:
        qstate = load_file(str(p / "model.safetensors"))
        student = QuantizedStudent(qstate, config, vocab, weighter, meta)
    except Exception as exc:  # safetensors and load_state_dict raise several kinds
        raise ModelError(f"{p}/model.safetensors: cannot load as int8 ({exc})") from None
    student.lexicon = load_lexicon(p, config)
    return student


def load_any(path: str | os.PathLike) -> Student:
    """Student.load, which loads float32 and int8 folders alike (kept for older callers)."""
    return Student.load(path)


def quantize_student(student: Student) -> QuantizedStudent:
    """The int8 version of a float32 student (same vocabulary, weights and settings)."""
    if isinstance(student, QuantizedStudent) or student.meta.get("quantized"):
        raise ModelError("the model is already int8-quantised")
    model = student.model
    qstate = quantize_state(
        {k: v.cpu() for k, v in model.state_dict().items() if not k.startswith("lexicon.")}
    )
    meta = dict(
        student.meta,
        quantized=SCHEME,
        quantization={
            "scheme": "symmetric int8, one float32 scale per row (max|row| / 127)",
            "int8": sorted(k for k, v in qstate.items() if v.dtype == torch.int8),
            "runtime": "int8 embedding lookup; torch dynamic quantisation (qint8) of "
            "LSTM and Linear",
        },
    )
    quantized = QuantizedStudent(qstate, model.config, student.vocab, student.weighter, meta)
    quantized.lexicon = student.current_lexicon()
    return quantized


def cosine_to_float(student: Student, quantized: Student, n: int = 64, seed: int = 0) -> float:
    """Mean cosine between the two models' vectors on `n` random character strings of the
    vocabulary (lengths 1..40, uniform weights): a sanity figure, not an evaluation."""
    from ltd_bert.student.model import random_batch

    ids, lengths, weights = random_batch(len(student.vocab), n, 40, seed)
    with torch.inference_mode():
        a = student.model(ids, lengths, weights).numpy()
        b = quantized.model(ids, lengths, weights).numpy()
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(cos.mean())


def quantize_model(model_dir: str | os.PathLike, output: str | os.PathLike) -> dict:
    """Write the int8 copy of a model folder to `output` (atomically); sizes and a sanity
    cosine in the result."""
    src, out = Path(model_dir), Path(output)
    if is_quantized(src):
        raise ModelError(f"{src}: already int8-quantised (quantise the float32 model)")
    if out.resolve() == src.resolve():
        raise ModelError(f"{out}: the output must differ from the model folder")
    student = Student.load(src)
    quantized = quantize_student(student)
    quantized.save(out, extra_files=[src / "metrics.jsonl"])
    before = (src / "model.safetensors").stat().st_size
    after = (out / "model.safetensors").stat().st_size
    return {
        "input": str(src),
        "output": str(out),
        "bytes_float32": before,
        "bytes_int8": after,
        "ratio": before / after,
        "cosine": cosine_to_float(student, quantized),
    }
