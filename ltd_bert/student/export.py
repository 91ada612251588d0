"""ONNX export of the student, and `OnnxStudent`, which encodes with onnxruntime.

Packed sequences do not export, and a bidirectional LSTM run over padded input is wrong
for the backward direction (it reads the padding before the sentence). `BiLSTMStudent`
(`token_states`) computes the same thing with plain tensors, which exports as it is
(`ExportableStudent` checks the model and holds it in evaluation mode):

- forward direction: a unidirectional LSTM over the padded input (padding comes after the
  characters, so every real position is exact);
- backward direction: each sequence reversed within its own length (a gather with
  idx[b, t] = len[b] - 1 - t for t < len[b], else t), a unidirectional LSTM with the
  `_reverse` weights, and the same gather to put the outputs back in place;
- both joined, padding positions set to 0 (as pad_packed_sequence does), then each layer
  feeds the next; weighted sum; projection.

The graph: inputs `ids` int64 (B, T), `lengths` int64 (B,), `weights` float32 (B, T);
output `vectors` float32 (B, D); B and T dynamic.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltd_bert.common.batching import length_batches
from ltd_bert.common.errors import LtdError, ModelError
from ltd_bert.common.version import __version__
from ltd_bert.student.model import BiLSTMStudent, Student, batch_tensors, random_batch

INPUTS = ("ids", "lengths", "weights")


OUTPUT = "vectors"


DEFAULT_OPSET = 17


TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| accepted by the check after export


ONNX_NAME = "model.onnx"  # where `ltd export` writes by default, inside the model folder


class ExportableStudent(nn.Module):
    """The float32 student as the exporter takes it. `BiLSTMStudent` itself runs without
    packed sequences (see the module's docstring), so this only refuses an int8 model and
    holds the model in evaluation mode; it shares all of the model's weights."""

    def __init__(self, model: BiLSTMStudent):
        super().__init__()
        if not isinstance(model.lstm, nn.LSTM) or not isinstance(model.embedding, nn.Embedding):
            raise ModelError("only a float32 model can be exported (not an int8-quantised one)")
        self.config = model.config
        self.model = model
        self.eval()

    def token_states(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, 2H), 0 at padding positions."""
        return self.model.token_states(ids, lengths)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor):
        return self.model(ids, lengths, weights)


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise LtdError(
            "ONNX export and inference need the onnx and onnxruntime packages: "
            "pip install onnx onnxruntime"
        ) from None
    return onnx, onnxruntime


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_float(model_dir: Path) -> Student:
    from ltd_bert.student.quantize import is_quantized

    if is_quantized(model_dir):
        raise ModelError(
            f"{model_dir}: an int8-quantised model has no ONNX export; use the float32 model "
            "it was made from"
        )
    return Student.load(model_dir)


def _session(path: Path, threads: int | None):
    _, ort = _require_onnx()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_difference(session, model: nn.Module, batches: Sequence[tuple]) -> float:
    """Largest |onnxruntime - PyTorch| over the given (ids, lengths, weights) batches."""
    worst = 0.0
    with torch.inference_mode():
        for ids, lengths, w in batches:
            feed = {"ids": ids.numpy(), "lengths": lengths.numpy(), "weights": w.numpy()}
            got = session.run([OUTPUT], feed)[0]
            worst = max(worst, float(np.abs(got - model(ids, lengths, w).numpy()).max()))
    return worst


def export_onnx(
    model_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
) -> dict:
    """Export a float32 model folder to ONNX (default MODEL_DIR/model.onnx), then check that
    onnxruntime gives the packed PyTorch model's vectors (to TOLERANCE) on padded batches.

    The file records the model it came from (sha256 of model.safetensors) in its metadata,
    so `OnnxStudent.load` can refuse a stale export. Written atomically.
    """
    onnx, _ = _require_onnx()
    src = Path(model_dir)
    out = Path(output) if output is not None else src / ONNX_NAME
    if opset < 14:
        raise LtdError(f"opset {opset}: ONNX export needs opset 14 or later")
    student = _load_float(src)
    graph = ExportableStudent(student.model)
    example = random_batch(len(student.vocab), 3, 7, seed=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with warnings.catch_warnings():  # the legacy exporter's notices about itself and LSTMs
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_axes={
                    "ids": {0: "batch", 1: "time"},
                    "lengths": {0: "batch"},
                    "weights": {0: "batch", 1: "time"},
                    OUTPUT: {0: "batch"},
                },
                opset_version=opset,
            )
        proto = onnx.load(str(tmp))
        meta = {
            "ltd_bert.weights_sha256": _sha256(src / "model.safetensors"),
            "ltd_bert.vocab_size": str(len(student.vocab)),
            "ltd_bert.output_dim": str(student.dim),
            "ltd_bert.tool_version": __version__,
        }
        onnx.helper.set_model_props(proto, meta)
        onnx.save(proto, str(tmp))
        batches = [random_batch(len(student.vocab), 16, 40, seed=s) for s in (2, 3)]
        batches.append(random_batch(len(student.vocab), 5, 3, seed=4))
        diff = max_difference(_session(tmp, threads=1), student.model, batches)
        if not diff < TOLERANCE:
            raise ModelError(
                f"ONNX export of {src} differs from PyTorch by {diff:.2e} (> {TOLERANCE:g}); "
                "nothing was written (please report this)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "input": str(src),
        "output": str(out),
        "opset": opset,
        "bytes": out.stat().st_size,
        "max_abs_diff": diff,
        "checked": sum(len(b[0]) for b in batches),
    }


class _OnnxModel(nn.Module):
    """Stands in for BiLSTMStudent inside a Student: same call, onnxruntime underneath."""

    def __init__(self, session, config, mean: torch.Tensor, similarity: torch.Tensor):
        super().__init__()
        self.session = session
        self.config = config
        self.register_buffer("mean", mean.clone())
        self.register_buffer("similarity", similarity.clone())

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor):
        feed = {"ids": ids.numpy(), "lengths": lengths.numpy(), "weights": weights.numpy()}
        return torch.from_numpy(self.session.run([OUTPUT], feed)[0])


class OnnxStudent(Student):
    """A Student that encodes with onnxruntime: `OnnxStudent.load(model_dir).encode(texts)`.

    Vocabulary, character weights, mean vector and every encode option come from the model
    folder, exactly as for `Student`; only the network runs in onnxruntime.
    """

    @classmethod
    def handles(cls, path: Path, meta: dict, runtime: str | None) -> bool:
        """`Student.load` with `runtime="onnx"`, or of an .onnx file in a model folder."""
        return runtime == "onnx" or (path.suffix == ".onnx" and path.is_file())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        onnx_path: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> OnnxStudent:
        """The model folder `path` with its ONNX export (default `path`/model.onnx); `path`
        may also be the .onnx file inside the folder."""
        _require_onnx()
        folder = Path(path)
        if onnx_path is None and folder.suffix == ".onnx" and folder.is_file():
            folder, onnx_path = folder.parent, folder
        file = Path(onnx_path) if onnx_path is not None else folder / ONNX_NAME
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such model folder (train one with `ltd train`)")
        if not file.is_file():
            raise ModelError(f"{file}: no such ONNX file (run `ltd export {folder}`)")
        try:
            session = _session(file, threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{file}: not a usable ONNX model ({exc})") from None
        props = session.get_modelmeta().custom_metadata_map
        expected = props.get("ltd_bert.weights_sha256")
        weights = folder / "model.safetensors"
        if expected and weights.is_file() and expected != _sha256(weights):
            raise ModelError(
                f"{file} was exported from a different model than {folder}; "
                f"re-run `ltd export {folder}`"
            )
        names = [i.name for i in session.get_inputs()]
        if names != list(INPUTS):
            raise ModelError(f"{file}: inputs {names}, expected {list(INPUTS)} (not an ltd export)")
        student = _load_float(folder)
        model = _OnnxModel(
            session, student.model.config, student.model.mean, student.model.similarity
        )
        onnx = cls(model, student.vocab, student.weighter, student.meta)
        onnx.lexicon = student.current_lexicon()  # the word path runs in numpy
        return onnx

    def network_prepared(
        self, texts: Sequence[str], weights: Sequence[np.ndarray], batch_size: int = 256
    ) -> np.ndarray:
        """As Student.network_prepared, but batches also end where the length drops below
        FILL × the batch's longest: a padded LSTM computes every padding step (a packed one
        skips them), and one long sentence would otherwise make 255 short ones pay for it."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted((i for i, t in enumerate(texts) if t), key=lambda i: -len(texts[i]))
        for idx in length_batches(order, [len(t) for t in texts], batch_size):
            ids, lengths, w = batch_tensors(
                [texts[i] for i in idx], [weights[i] for i in idx], self.index, self.max_chars
            )
            out[idx] = self.model(ids, lengths, w).numpy()
        return out

    def save(self, path, extra_files=()):
        raise ModelError("an ONNX student cannot be saved; save the PyTorch model instead")
