"""`ltd finetune` and `ltd predict`: adapt a trained student to labelled data.

Two tasks:
- `classify`: `text<TAB>label` lines (labels are any strings). A linear head on the sentence
  vector (made unit length, times √D, so every input coordinate has a scale near 1),
  cross-entropy. `freeze=True` trains only the head: the "frozen student + linear head"
  baseline. The head is saved as `head.safetensors` (`weight` L × D, `bias` L) with the
  labels in `labels.json`, next to the student, for `Classifier` / `ltd predict`.
- `pairs`: `s1<TAB>s2<TAB>label` lines (or JSON lines, as `ltd eval` reads them). CoSENT on
  the cosines: log(1 + Σ exp(λ(cos_j − cos_i))) over the pairs (i, j) of a batch with
  label_i > label_j, λ = 20: it only asks that cosines be ordered like the labels.

Inputs are prepared once with the student's own weighter (cleaning, jieba, IDF weights) and
batched with `batch_tensors`. After each epoch the held-out part (`valid` file, else a
seeded `val_fraction` of the training file) is scored: accuracy (classify) or Spearman × 100
(pairs); the best epoch is kept. The output is an ordinary model folder (`Student.load`,
`ltd encode`) whose config.json has `finetuned: {task, ...}`, plus `metrics.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ltd_bert.common.errors import InputError, ModelError
from ltd_bert.common.textio import LineReader
from ltd_bert.student.model import Student, batch_tensors, save_model_folder, word_id_tensor
from ltd_bert.text.clean import clean_text

log = logging.getLogger(__name__)

TASKS = ("classify", "pairs")
HEAD_FILE = "head.safetensors"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.jsonl"
HEAD_INPUT = "unit vector × sqrt(dim)"


@dataclass
class FinetuneConfig:
    task: str = "classify"  # classify | pairs
    epochs: int = 3
    lr: float = 5e-4  # the student's learning rate (small: it is already trained)
    head_lr: float | None = None  # the classification head's; None = 20 × lr
    batch_size: int = 32
    val_fraction: float = 0.1  # held out of the training file when there is no valid file
    freeze: bool = False  # train only the head (classify)
    seed: int = 42
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of all steps, then linear decay
    clip: float = 1.0
    scale: float = 20.0  # CoSENT λ
    plot: bool = True  # metrics.png when matplotlib is importable
    errors: str = "strict"  # undecodable input lines: strict | replace | skip

    @property
    def effective_head_lr(self) -> float:
        return self.head_lr if self.head_lr is not None else 20 * self.lr


# --- data -------------------------------------------------------------------------------


@dataclass
class Labelled:
    texts: list[str]
    labels: list[str]
    lines: list[int]


def read_labelled(path: str, errors: str = "strict") -> Labelled:
    """`text<TAB>label` lines (or JSON lines with `text` and `label`); blank lines skipped."""
    out = Labelled([], [], [])
    for _, lineno, line in LineReader([path], errors=errors):
        if not clean_text(line):  # blank, also once zero-width characters are dropped
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
                text, label = row["text"], row["label"]
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{path}:{lineno}: expected a JSON object with text and label"
                ) from None
        else:
            parts = line.split("\t")
            if len(parts) != 2:
                raise InputError(
                    f"{path}:{lineno}: expected text<TAB>label, got {len(parts)} field(s)"
                )
            text, label = parts
        text, label = str(text), str(label).strip()
        if not text.strip() or not label:
            raise InputError(f"{path}:{lineno}: empty {'text' if label else 'label'}")
        out.texts.append(text)
        out.labels.append(label)
        out.lines.append(lineno)
    if not out.texts:
        raise InputError(f"{path}: no labelled lines")
    return out


@dataclass
class LabelledPairs:
    s1: list[str]
    s2: list[str]
    labels: np.ndarray


def read_labelled_pairs(path: str, errors: str = "strict") -> LabelledPairs:
    """`s1<TAB>s2<TAB>label` lines (or JSON lines), as `ltd eval` reads them, streamed with
    exact line numbers in errors; every pair needs a numeric label."""
    from ltd_bert.tasks.search import read_pair_lines

    s1, s2, labels = [], [], []
    for pair in read_pair_lines(path, errors):
        if pair.label is None:
            raise InputError(f"{path}:{pair.lineno}: no label (expected s1<TAB>s2<TAB>label)")
        s1.append(pair.s1)
        s2.append(pair.s2)
        labels.append(pair.label)
    if not labels:
        raise InputError(f"{path}: no pairs")
    return LabelledPairs(s1, s2, np.asarray(labels, dtype=np.float64))


def holdout(n: int, fraction: float, seed: int, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded random `fraction` held out."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    n_val = min(max(1, round(n * fraction)), n - 1)
    if n_val <= 0:
        raise InputError(
            f"{name}: {n} example(s), too few to hold out a validation part (give --valid)"
        )
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def cosent_loss(cos: torch.Tensor, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT: log(1 + Σ_{label_i > label_j} exp(λ(cos_j − cos_i))) over a batch of pairs."""
    s = cos * scale
    diff = s[None, :] - s[:, None]  # diff[i, j] = s_j − s_i
    wrong = labels[:, None] > labels[None, :]  # i should score above j
    diff = diff.masked_fill(~wrong, float("-inf"))
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


def unit_scaled(v: torch.Tensor) -> torch.Tensor:
    """The head's input: the sentence vector made unit length, times √D."""
    return F.normalize(v, dim=-1) * math.sqrt(v.shape[-1])


# --- tasks ------------------------------------------------------------------------------


class Prepared:
    """Sentences cleaned and weighted once; batches of them run through the student."""

    def __init__(self, student: Student, sentences: Sequence[str]):
        self.student = student
        self.texts, self.weights = student.prepare(sentences)

    def forward(self, idx: Sequence[int]) -> torch.Tensor:
        texts = [self.texts[i] for i in idx]
        ids, lengths, w = batch_tensors(
            texts, [self.weights[i] for i in idx], self.student.index, self.student.max_chars
        )
        word_ids = word_id_tensor(self.student, texts, ids)
        return self.student.model(ids, lengths, w, word_ids)  # (B, D)

    def encode(self, idx: Sequence[int] | None = None) -> torch.Tensor:
        """Vectors in inference mode (the model's train/eval state is left to the caller)."""
        idx = range(len(self.texts)) if idx is None else idx
        texts = [self.texts[i] for i in idx]
        weights = [self.weights[i] for i in idx]
        return torch.from_numpy(self.student.encode_prepared(texts, weights))


class ClassifyTask:
    metric = "val_accuracy"

    def __init__(self, student: Student, cfg: FinetuneConfig, train: str, valid: str | None):
        data = read_labelled(train, cfg.errors)
        self.labels = sorted(set(data.labels))
        if len(self.labels) < 2:
            raise InputError(f"{train}: needs at least 2 different labels, found {self.labels}")
        ids = {y: i for i, y in enumerate(self.labels)}
        if valid:
            vdata = read_labelled(valid, cfg.errors)
            for y, line in zip(vdata.labels, vdata.lines, strict=True):
                if y not in ids:
                    raise InputError(f"{valid}:{line}: label {y!r} does not occur in {train}")
            tr_texts, tr_y = data.texts, [ids[y] for y in data.labels]
            va_texts, va_y = vdata.texts, [ids[y] for y in vdata.labels]
        else:
            tr, va = holdout(len(data.texts), cfg.val_fraction, cfg.seed, train)
            tr_texts, tr_y = [data.texts[i] for i in tr], [ids[data.labels[i]] for i in tr]
            va_texts, va_y = [data.texts[i] for i in va], [ids[data.labels[i]] for i in va]
        self.cfg = cfg
        self.student = student
        self.train = Prepared(student, tr_texts)
        self.valid = Prepared(student, va_texts)
        self.train_y = torch.tensor(tr_y, dtype=torch.long)
        self.valid_y = torch.tensor(va_y, dtype=torch.long)
        self.n_train, self.n_valid = len(tr_texts), len(va_texts)
        self.head = nn.Linear(student.dim, len(self.labels))
        self.frozen_features = None
        if cfg.freeze:  # the student never changes: its vectors are computed once
            student.model.eval()
            self.frozen_features = unit_scaled(self.train.encode())

    def modules(self) -> list[nn.Module]:
        return [self.head] if self.cfg.freeze else [self.student.model, self.head]

    def batch_loss(self, idx: np.ndarray) -> torch.Tensor:
        if self.frozen_features is not None:
            x = self.frozen_features[torch.from_numpy(idx)]
        else:
            x = unit_scaled(self.train.forward(idx))
        return F.cross_entropy(self.head(x), self.train_y[torch.from_numpy(idx)])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.n_valid:
            return {}
        logits = self.head(unit_scaled(self.valid.encode()))
        return {
            "val_loss": float(F.cross_entropy(logits, self.valid_y)),
            "val_accuracy": float((logits.argmax(1) == self.valid_y).float().mean()),
        }

    def extras(self) -> dict[str, Any]:
        return {"labels": len(self.labels), "head_input": HEAD_INPUT}

    def save_extras(self, folder: Path) -> list[Path]:
        from safetensors.torch import save_file

        head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(folder / HEAD_FILE))
        (folder / LABELS_FILE).write_text(
            json.dumps(self.labels, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        return [folder / HEAD_FILE, folder / LABELS_FILE]


class PairsTask:
    metric = "val_spearman"

    def __init__(self, student: Student, cfg: FinetuneConfig, train: str, valid: str | None):
        data = read_labelled_pairs(train, cfg.errors)
        if valid:
            vdata = read_labelled_pairs(valid, cfg.errors)
            tr = (data.s1, data.s2, data.labels)
            va = (vdata.s1, vdata.s2, vdata.labels)
        else:
            t, v = holdout(len(data.labels), cfg.val_fraction, cfg.seed, train)
            tr = ([data.s1[i] for i in t], [data.s2[i] for i in t], data.labels[t])
            va = ([data.s1[i] for i in v], [data.s2[i] for i in v], data.labels[v])
        self.cfg = cfg
        self.student = student
        self.train, self.train_pairs, self.train_y = self._prepare(*tr)
        self.valid, self.valid_pairs, self.valid_y = self._prepare(*va)
        self.n_train, self.n_valid = len(self.train_y), len(self.valid_y)

    def _prepare(self, s1: list[str], s2: list[str], labels: np.ndarray):
        uniq = sorted(set(s1) | set(s2))
        pos = {s: i for i, s in enumerate(uniq)}
        pairs = np.array([[pos[a], pos[b]] for a, b in zip(s1, s2, strict=True)], dtype=np.int64)
        return Prepared(self.student, uniq), pairs.reshape(-1, 2), torch.tensor(labels).float()

    def modules(self) -> list[nn.Module]:
        return [self.student.model]

    def _loss(self, vecs: torch.Tensor, pairs: np.ndarray, y: torch.Tensor) -> torch.Tensor:
        a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
        cos = F.cosine_similarity(vecs[a], vecs[b], dim=-1)
        return cosent_loss(cos, y, self.cfg.scale)

    def batch_loss(self, idx: np.ndarray) -> torch.Tensor:
        pairs = self.train_pairs[idx]
        uniq, inverse = np.unique(pairs, return_inverse=True)  # each sentence encoded once
        vecs = self.train.forward(uniq)
        return self._loss(vecs, inverse.reshape(pairs.shape), self.train_y[torch.from_numpy(idx)])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        from ltd_bert.common.stats import spearman

        if not self.n_valid:
            return {}
        vecs = self.valid.encode()
        losses = []
        bs = self.cfg.batch_size
        for s in range(0, self.n_valid, bs):
            losses.append(
                float(self._loss(vecs, self.valid_pairs[s : s + bs], self.valid_y[s : s + bs]))
            )
        a, b = self.valid_pairs[:, 0], self.valid_pairs[:, 1]
        cos = F.cosine_similarity(vecs[a], vecs[b], dim=-1).numpy()
        return {
            "val_loss": float(np.mean(losses)),
            "val_spearman": 100 * spearman(cos, self.valid_y.numpy()),
        }

    def extras(self) -> dict[str, Any]:
        return {"loss": "cosent", "scale": self.cfg.scale}

    def save_extras(self, folder: Path) -> list[Path]:
        return []


# --- the loop ---------------------------------------------------------------------------


def lr_factor(step: int, total: int, warmup: float) -> float:
    warm = max(1, int(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def finetune(
    model_dir: str | os.PathLike,
    train: str,
    output: str | os.PathLike,
    cfg: FinetuneConfig,
    valid: str | None = None,
    progress=None,
) -> dict[str, Any]:
    """Fine-tune the student in `model_dir` on `train`; the best epoch's model goes to
    `output`. Returns the metrics per epoch, the best one and where things were written."""
    if cfg.task not in TASKS:
        raise InputError(f"--task must be one of {', '.join(TASKS)}")
    if cfg.freeze and cfg.task != "classify":
        raise InputError("--freeze trains only a classification head: use it with --task classify")
    torch.manual_seed(cfg.seed)
    student = Student.load(model_dir)
    task_cls = ClassifyTask if cfg.task == "classify" else PairsTask
    task = task_cls(student, cfg, train, valid)
    if task.n_train < 2:
        raise InputError(f"{train}: needs at least 2 training examples, found {task.n_train}")

    head = getattr(task, "head", None)
    groups = []
    if not cfg.freeze:
        groups.append({"params": list(student.model.parameters()), "lr": cfg.lr, "base": cfg.lr})
    if head is not None:
        hl = cfg.effective_head_lr
        groups.append({"params": list(head.parameters()), "lr": hl, "base": hl})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(task.n_train / cfg.batch_size)
    total = per_epoch * cfg.epochs

    def set_mode(training: bool):
        student.model.train(training and not cfg.freeze)
        if head is not None:
            head.train(training)

    def snapshot() -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in task.modules()]

    records: list[dict[str, Any]] = []
    set_mode(False)
    records.append({"epoch": 0, "step": 0, **task.evaluate()})  # the starting point
    best: dict[str, Any] = {}
    best_state = snapshot()
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        set_mode(True)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(task.n_train)
        losses = []
        for start in range(0, task.n_train, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = g["base"] * lr_factor(step, total, cfg.warmup)
            loss = task.batch_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.clip)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, total, losses[-1])
        set_mode(False)
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses))}
        record.update(task.evaluate())
        record["lr"] = opt.param_groups[0]["lr"]
        records.append(record)
        log.info("finetune epoch %d: %s", epoch, record)
        # keep the best on validation; without validation, the last epoch
        if (
            not best
            or task.metric not in record
            or record[task.metric] > best.get(task.metric, -math.inf)
        ):
            best = dict(record)
            best_state = snapshot()
    for m, state in zip(task.modules(), best_state, strict=True):
        m.load_state_dict(state)
    set_mode(False)
    seconds = time.perf_counter() - t0

    meta = {
        k: v
        for k, v in student.meta.items()
        if k not in ("student", "tool_version", "format_version")
    }
    meta["finetuned"] = {
        "task": cfg.task,
        "from": str(Path(model_dir).resolve()),
        "train": str(Path(train).resolve()),
        "valid": str(Path(valid).resolve()) if valid else f"{cfg.val_fraction} of train",
        "train_examples": task.n_train,
        "valid_examples": task.n_valid,
        "config": asdict(cfg),
        "best": best,
        **task.extras(),
    }
    plot = save_finetuned(Path(output), student, task, meta, records, cfg.plot)
    return {
        "records": records,
        "best": best,
        "metric": task.metric,
        "steps": step,
        "seconds": seconds,
        "train_examples": task.n_train,
        "valid_examples": task.n_valid,
        "output": str(output),
        "plot": str(plot) if plot else None,
    }


def save_finetuned(
    out: Path, student: Student, task, meta: dict, records: list[dict], plot: bool
) -> Path | None:
    """The model folder (atomic, via `save_model_folder`) with metrics.jsonl, the task's
    files and metrics.png when matplotlib is there; returns the plot's final path."""
    with tempfile.TemporaryDirectory(prefix="ltd-finetune.") as tmp:
        stage = Path(tmp)
        metrics = stage / METRICS_FILE
        metrics.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        extra = [metrics, *task.save_extras(stage)]
        made = None
        if plot:
            from ltd_bert.tasks.plot import plot_metrics

            made = plot_metrics(metrics, title=out.name)
            if made is not None:
                extra.append(made)
        save_model_folder(
            out,
            student.model,
            student.vocab,
            student.weighter.idf.source,
            meta,
            extra,
            lexicon=student.current_lexicon(),
        )
    return out / made.name if made is not None else None


# --- prediction ---------------------------------------------------------------------------


class Classifier:
    """A fine-tuned classifier: the student and its head. `Classifier.load(path)`."""

    def __init__(self, student: Student, weight: np.ndarray, bias: np.ndarray, labels: list[str]):
        self.student = student
        self.weight = weight  # (L, D)
        self.bias = bias  # (L,)
        self.labels = labels

    @classmethod
    def load(cls, path: str | os.PathLike) -> Classifier:
        p = Path(path)
        student = Student.load(p)
        if not (p / HEAD_FILE).is_file() or not (p / LABELS_FILE).is_file():
            raise ModelError(
                f"{p}: not a classifier (no {HEAD_FILE} / {LABELS_FILE}); make one with "
                "`ltd finetune --task classify`"
            )
        from safetensors.numpy import load_file

        try:
            head = load_file(str(p / HEAD_FILE))
            labels = json.loads((p / LABELS_FILE).read_text(encoding="utf-8"))
            weight, bias = head["weight"], head["bias"]
        except Exception as exc:  # safetensors, JSON, missing keys
            raise ModelError(f"{p}: unreadable {HEAD_FILE} or {LABELS_FILE} ({exc})") from None
        if weight.shape != (len(labels), student.dim) or bias.shape != (len(labels),):
            raise ModelError(
                f"{p}: head of shape {weight.shape} does not fit {len(labels)} labels and a "
                f"student of dimension {student.dim}"
            )
        return cls(student, weight, bias, [str(x) for x in labels])

    def probabilities(self, unit_vectors: np.ndarray) -> np.ndarray:
        x = unit_vectors * math.sqrt(self.student.dim)
        logits = x @ self.weight.T + self.bias  # (N, L)
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        probs = self.probabilities(self.student.encode(texts, normalize=True))
        best = probs.argmax(1)
        return [(self.labels[j], float(probs[i, j])) for i, j in enumerate(best)]


def predict_file(
    classifier: Classifier, source: str, batch_size: int = 256, errors: str = "strict"
) -> Iterator[tuple[str, str, float]]:
    """(text, label, probability) for each line of `source`, streamed in blocks."""
    from ltd_bert.tasks.encode import encoded_blocks

    reader = LineReader([source], errors=errors)
    for sents, vecs in encoded_blocks(classifier.student, reader, batch_size, True, "similarity"):
        probs = classifier.probabilities(vecs)
        best = probs.argmax(1)
        for i, text in enumerate(sents):
            yield text, classifier.labels[best[i]], float(probs[i, best[i]])
