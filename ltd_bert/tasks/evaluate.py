"""`ltd eval`: Spearman × 100 between the cosine of two sentence vectors and a label, for the
student, the teacher and two baselines; and the student's fidelity to the teacher file.

Pair files: `sentence1<TAB>sentence2<TAB>label` (no header), or JSON lines with `sentence1`,
`sentence2` and `label`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.common.stats import cosines, spearman
from ltd_bert.text.clean import clean_text, is_content_word
from ltd_bert.text.segment import segment
from ltd_bert.text.weights import Weighter, token_weights

log = logging.getLogger(__name__)


@dataclass
class Pairs:
    name: str
    s1: list[str]
    s2: list[str]
    labels: np.ndarray


def read_pairs(
    path: str | Path, max_pairs: int | None = None, seed: int = 0, errors: str = "strict"
) -> Pairs:
    """Read a labelled pair file; `max_pairs` keeps a fixed random sample (the same for every
    run)."""
    from ltd_bert.tasks.finetune import read_labelled_pairs

    p = Path(path)
    pairs = read_labelled_pairs(str(p), errors)
    idx = np.arange(len(pairs.labels))
    if max_pairs is not None and len(idx) > max_pairs:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_pairs, replace=False))
    name = p.parent.name + "/" + p.stem if p.parent.name else p.stem
    return Pairs(name, [pairs.s1[i] for i in idx], [pairs.s2[i] for i in idx], pairs.labels[idx])


Encoder = Callable[[list[str]], np.ndarray]


def score(pairs: Pairs, encode: Encoder) -> float:
    """Spearman × 100 of cosine vs label; each distinct sentence is encoded once."""
    uniq = sorted(set(pairs.s1) | set(pairs.s2))
    vecs = encode(uniq)
    pos = {s: i for i, s in enumerate(uniq)}
    a = vecs[[pos[s] for s in pairs.s1]]
    b = vecs[[pos[s] for s in pairs.s2]]
    return 100 * spearman(cosines(a, b), pairs.labels)


# --- encoders ---------------------------------------------------------------------------
class TeacherVectors:
    """The teacher's vectors of sentence lists, several poolings from one forward pass,
    cached on disk by content hash (evaluating many students runs the teacher once)."""

    def __init__(
        self,
        teacher,
        weighter: Weighter,
        prefix: str,
        layer: int = -1,
        max_length: int = 256,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        poolings: Sequence[str] = ("idf", "mean"),
    ):
        from ltd_bert.teacher.model import PoolingSettings

        self.teacher = teacher
        self.weighter = weighter
        self.settings = PoolingSettings("idf", layer, prefix, max_length)
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.poolings = list(poolings)

    def _path(self, sentences: list[str], pooling: str) -> Path | None:
        if self.cache_dir is None:
            return None
        t, st = self.teacher, self.settings
        key = hashlib.sha256(
            json.dumps(
                [
                    t.id,
                    t.config_hash,
                    pooling,
                    st.prefix,
                    st.layer,
                    st.max_length,
                    st.long,
                    self.weighter.idf.sha256 if pooling == "idf" else "",
                    self.weighter.eps,
                    getattr(self.weighter, "segmenter", "jieba"),
                    sentences,
                ],
                ensure_ascii=False,
            ).encode()
        ).hexdigest()[:24]
        return self.cache_dir / f"{key}.npy"

    def vectors(self, sentences: list[str], pooling: str) -> np.ndarray:
        path = self._path(sentences, pooling)
        if path is not None and path.is_file():
            return np.load(path)
        texts = [clean_text(s) for s in sentences]
        out = {p: np.zeros((len(texts), self.teacher.dim), np.float32) for p in self.poolings}
        order = [i for i in sorted(range(len(texts)), key=lambda i: len(texts[i])) if texts[i]]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            cws = [self.weighter.char_weights(texts[i]) for i in idx]
            vecs, _ = self.teacher.embed_poolings(
                [texts[i] for i in idx], cws, self.settings, self.poolings
            )
            for p, v in vecs.items():
                out[p][idx] = v
        for p, v in out.items():
            cached = self._path(sentences, p)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, v)
        return out[pooling]

    def encoder(self, pooling: str) -> Encoder:
        return lambda sentences: self.vectors(sentences, pooling)


def static_encoder(teacher, weighter: Weighter) -> Encoder:
    """The static floor: the teacher's input token embeddings, IDF-weighted (no context)."""
    table = teacher.model.get_input_embeddings().weight.detach().float().numpy()

    def encode(sentences: list[str]) -> np.ndarray:
        out = np.zeros((len(sentences), table.shape[1]), dtype=np.float32)
        for i, s in enumerate(sentences):
            text, cw = weighter(s)
            if not text:
                continue
            enc = teacher.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            tw = token_weights(cw, enc["offset_mapping"])
            out[i] = tw @ table[enc["input_ids"]]
        return out

    return encode


def tfidf_encoder(weighter: Weighter) -> Encoder:
    """jieba TF-IDF bag of words, as dense vectors over the sentences' own vocabulary."""

    def encode(sentences: list[str]) -> np.ndarray:
        bags = []
        vocab: dict[str, int] = {}
        for s in sentences:
            words = [w.lower() for w in segment(clean_text(s)) if is_content_word(w)]
            bag = Counter(words)
            for w in bag:
                vocab.setdefault(w, len(vocab))
            bags.append(bag)
        out = np.zeros((len(sentences), max(len(vocab), 1)), dtype=np.float32)
        for i, bag in enumerate(bags):
            for w, tf in bag.items():
                out[i, vocab[w]] = tf * weighter.idf.get(w)
        return out

    return encode


def held_out(student, data: str | Path, batch_size: int = 256, name: str = "the model"):
    """The student's centred vectors and the teacher's raw vectors of the teacher file's
    held-out rows (the tail the model was not trained on, as recorded in its config), the
    first such row, and the rows' texts' lengths in characters."""
    from ltd_bert.student.config import TrainConfig
    from ltd_bert.student.data import Data, split
    from ltd_bert.teacher.store import TARGET_KEYS, same_setting, setting

    d = Data([str(data)])
    try:
        if d.dim != student.dim:
            raise InputError(f"{data}: vectors of dimension {d.dim}, the model gives {student.dim}")
        for k in TARGET_KEYS:  # other teacher, IDF or eps: other targets, a meaningless score
            ours, theirs = setting(student.meta, k), setting(d.settings, k)
            if ours is not None and theirs is not None and not same_setting(k, ours, theirs):
                raise StoreError(
                    f"{data} was made with other settings than {name} ({k}: "
                    f"{theirs!r}, the model's: {ours!r}); use the teacher file it was trained on"
                )
        fields = TrainConfig.__dataclass_fields__
        cfg = TrainConfig(**{k: v for k, v in student.meta.get("train", {}).items() if k in fields})
        n_train, n_val = split(d.n, cfg)
        if n_val == 0:
            n_train, n_val = 0, d.n
        sents, vecs, weights = d.read(n_train, n_train + n_val)
    finally:
        d.close()
    chars = student.read_chars(sents)
    return student.encode_prepared(sents, weights, batch_size), vecs, n_train, chars


def fidelity(
    model_dir: str | Path, data: str | Path, batch_size: int = 256, calibrate: bool = False
) -> dict:
    """Mean centred cosine between student and teacher vectors on the file's held-out rows,
    and how well the similarity vectors order neighbour pairs (calibrate.py): with the
    model's whitening and share of the mean, and with the ones these rows choose, which
    `calibrate=True` writes into the model folder."""
    from ltd_bert.student import calibrate as cal_
    from ltd_bert.student.model import Student

    student = Student.load(model_dir)
    if student.meta.get("quantized") and calibrate:
        raise InputError(f"{model_dir}: calibrate the float32 model, then quantize it again")
    pred, vecs, start, chars = held_out(student, data, batch_size, f"model {model_dir}")
    centred = cosines(pred, vecs - student.mean)
    raw = cosines(pred + student.mean, vecs)
    cal = cal_.calibrate(pred, vecs, student.mean, chars=chars)
    current = None
    if cal.pairs is not None:  # the model's own choice, on the pairs the calibration scored
        i, j = cal.pairs
        sim = student.similarity(pred, chars)
        current = 100 * spearman(cosines(sim[i], sim[j]), cosines(vecs[i], vecs[j]))
    result = {
        "rows": len(vecs),
        "centred_cosine": float(centred.mean()),
        "raw_cosine": float(raw.mean()),
        "start_row": start,
        "mean_scale": student.mean_scale,
        "whiten": student.whiten,
        "norm_map": student.norm_map is not None,
        "best_mean_scale": cal.mean_scale,
        "best_whiten": cal.whiten,
        "best_norm_map": cal.norm is not None,
        "pair_spearman": current,
        "best_pair_spearman": cal.score,
    }
    if calibrate and cal.scores:
        write_calibration(Path(model_dir), student, cal)
    return result


def write_calibration(model_dir: Path, student, cal) -> None:
    """The model folder again (atomically), with the calibration's map in the weights and
    its choices in config.json; every other file of the folder is kept."""
    import torch

    from ltd_bert.student.model import MODEL_FILES

    student.model.similarity.copy_(torch.from_numpy(cal.map))
    student.meta = dict(student.meta, **cal.config_entries())
    keep = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name not in MODEL_FILES)
    student.save(model_dir, extra_files=keep)


def evaluate(
    pair_files: Sequence[str],
    model_dir: str | None,
    teacher_name: str | None,
    baselines: bool,
    max_pairs: int | None,
    batch_size: int = 64,
    errors: str = "strict",
) -> dict:
    """Scores per file and encoder: `{"files": [...], "rows": {encoder: {file: score}}}`."""
    from ltd_bert.student.model import Student

    sets = [read_pairs(f, max_pairs, errors=errors) for f in pair_files]
    rows: dict[str, dict[str, float]] = {}
    student = Student.load(model_dir) if model_dir else None
    weighter = student.weighter if student else None
    if student is not None:
        rows["student"] = {p.name: score(p, student.encode) for p in sets}
    if teacher_name or baselines:
        from ltd_bert.common.cache import eval_cache
        from ltd_bert.teacher.model import Teacher, default_prefix
        from ltd_bert.text.idf import load_idf

        teacher = Teacher(
            teacher_name or (student.meta.get("teacher") if student else None) or "builtin"
        )
        if weighter is None:
            weighter = Weighter(load_idf("jieba"), 1.0)
        prefix = (
            student.meta.get("prefix", default_prefix(teacher.id))
            if student
            else default_prefix(teacher.id)
        )
        layer = student.meta.get("layer", -1) if student else -1
        cache = eval_cache()
        if teacher_name:
            tv = TeacherVectors(
                teacher, weighter, prefix, layer, batch_size=batch_size, cache_dir=cache
            )
            rows["teacher, IDF pooling (as the student)"] = {
                p.name: score(p, tv.encoder("idf")) for p in sets
            }
            if prefix != default_prefix(teacher.id) or layer != -1:
                tv = TeacherVectors(
                    teacher,
                    weighter,
                    default_prefix(teacher.id),
                    -1,
                    batch_size=batch_size,
                    cache_dir=cache,
                    poolings=["mean"],
                )
            rows["teacher, mean pooling (as intended)"] = {
                p.name: score(p, tv.encoder("mean")) for p in sets
            }
        if baselines:
            rows["static floor: IDF-weighted teacher input embeddings"] = {
                p.name: score(p, static_encoder(teacher, weighter)) for p in sets
            }
            rows["jieba TF-IDF bag of words"] = {
                p.name: score(p, tfidf_encoder(weighter)) for p in sets
            }
    return {
        "files": [p.name for p in sets],
        "pairs": {p.name: len(p.labels) for p in sets},
        "rows": rows,
    }
