"""What every kind of student shares, without torch: the model folder's config, vocabulary
and weighter (`read_model_folder`), the size presets, and `Encoder`, the `encode` contract
(spaces, whitening, the mean) that the float32, int8, ONNX and numpy students all keep.

Importing this module imports neither torch nor transformers (`light.py` builds on it so that
`ltd similarity A B` starts in well under the time torch takes to import).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ltd_bert.common.errors import ModelError
from ltd_bert.common.version import __version__

#: the share of the mean for models that were never calibrated: the teacher's own space
#: (student.calibrate chooses it for the others)
DEFAULT_SCALE = 1.0

PAD, UNK = 0, 1
FORMAT_VERSION = 2  # 2: the optional word path (lexicon.json, lexicon.safetensors)
MODEL_FILES = ("config.json", "model.safetensors", "vocab.json", "idf.tsv.gz")
#: what `Student.encode` returns: see its docstring
SPACES = ("similarity", "teacher", "centred")
#: what `Student.load` runs a model with: None (PyTorch, float32 or int8 as the folder is),
#: "torch", "onnx" (onnxruntime, the folder's ONNX export) or "numpy" (the float32 model
#: without torch: `light.LightStudent`, what the command line starts fastest with)
RUNTIMES = (None, "torch", "onnx", "numpy")

# Size presets: (embedding_dim, hidden_size per direction). See docs/pipeline.md (ltd train).
SIZES = {"tiny": (128, 128), "small": (192, 192), "base": (256, 256), "large": (256, 384)}


#: padded characters one inference batch may hold (memory with long documents)
BATCH_CHARS = 131072
#: a text longer than this many characters is read as windows of about that length, rows
#: of the same batches as the sentences, combined by their share of the text's IDF mass
#: (what one long recurrence pools, but for the context a window misses): documents then
#: encode at the speed of sentences per character. 0: read every text whole. A model's
#: config.json may set its own ("window"). 384 was chosen on the calibration mix's
#: documents (docs/speed.md "Long texts in windows").
WINDOW = 384


def batch_arrays(
    texts: Sequence[str], weights: Sequence[np.ndarray], index: dict[str, int], max_chars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded ids (B, T), lengths (B,), weights (B, T); long texts are cut to max_chars and
    their weights renormalised. Characters become ids through one table lookup for the whole
    batch (`char_table`), not a dictionary lookup each."""
    lengths = np.fromiter((min(len(t), max_chars) for t in texts), np.int64, len(texts))
    T = max(int(lengths.max(initial=1)), 1)
    inside = np.arange(T) < lengths[:, None]
    cut = lengths.tolist()
    flat = "".join(t[:n] if n < len(t) else t for t, n in zip(texts, cut, strict=True))
    codes = np.frombuffer(flat.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    table = char_table(index)
    ids = np.zeros((len(texts), T), dtype=np.int64)
    ids[inside] = np.where(codes < len(table), table[np.minimum(codes, len(table) - 1)], UNK)
    w = np.zeros((len(texts), T), dtype=np.float32)
    if len(texts):
        w[inside] = np.concatenate([cw[:n] for cw, n in zip(weights, cut, strict=True)])
    for i, (t, n) in enumerate(zip(texts, cut, strict=True)):
        if n < len(t):
            s = w[i, :n].sum()
            if s > 0:
                w[i, :n] /= s
    return ids, lengths, w


_CHAR_TABLES: dict[int, tuple[dict[str, int], np.ndarray]] = {}


def char_table(index: dict[str, int]) -> np.ndarray:
    """`index` (character → id) as an array over code points up to its highest character,
    UNK for the others; made once per index."""
    hit = _CHAR_TABLES.get(id(index))
    if hit is not None and hit[0] is index:
        return hit[1]
    chars = {ord(c): i for c, i in index.items() if len(c) == 1}
    table = np.full(max(chars, default=0) + 1, UNK, dtype=np.int64)
    table[list(chars)] = list(chars.values())
    if len(_CHAR_TABLES) >= 8:
        _CHAR_TABLES.clear()
    _CHAR_TABLES[id(index)] = (index, table)
    return table


def length_batches(texts: Sequence[str], batch_size: int, max_chars: int) -> list[list[int]]:
    """The indices of the non-empty `texts` in inference batches, longest first: up to
    `batch_size` texts of similar lengths, fewer for long documents (BATCH_CHARS)."""
    order = sorted((i for i, t in enumerate(texts) if t), key=lambda i: -len(texts[i]))
    batches, start = [], 0
    while start < len(order):
        longest = min(len(texts[order[start]]), max_chars)
        idx = order[start : start + max(1, min(batch_size, BATCH_CHARS // longest))]
        start += len(idx)
        batches.append(idx)
    return batches


@dataclass
class Windows:
    """What the network reads for some texts (`windows`): `rows` and their `weights`, the
    text each row belongs to (`owner`) and its share of that text's weight (`share`)."""

    rows: list[str]
    weights: list[np.ndarray]
    owner: np.ndarray
    share: np.ndarray
    texts: int

    def combine(self, out: np.ndarray) -> np.ndarray:
        """The texts' vectors (texts, D) from the rows' (rows, D)."""
        if len(self.rows) == self.texts:
            return out
        res = np.zeros((self.texts, out.shape[1]), dtype=out.dtype)
        np.add.at(res, self.owner, out * self.share[:, None])
        return res


def windows(
    texts: Sequence[str], weights: Sequence[np.ndarray], window: int, max_chars: int
) -> Windows:
    """The rows the network reads for `texts` when texts longer than `window` characters
    (after the cut to `max_chars`) are read in windows.

    A long text of n characters becomes ceil(n / window) windows of equal length, each
    with its weights renormalised to sum to 1, so that its vector is an affine image of its
    pooled states; combined with weights equal to each window's share of the text's weight,
    the text's vector is the network's pooling of the whole text but for the context a
    window lacks. Texts that fit, and texts without weight, are one row each, as before."""
    rows: list[str] = []
    row_weights: list[np.ndarray] = []
    owner: list[int] = []
    share: list[float] = []
    for i, (t, w) in enumerate(zip(texts, weights, strict=True)):
        n = min(len(t), max_chars)
        if window and n > window:
            w = np.asarray(w[:n], dtype=np.float32)
            total = float(w.sum())
            if total > 0:
                k = -(-n // window)
                bounds = [round(j * n / k) for j in range(k + 1)]
                for a, b in zip(bounds, bounds[1:], strict=False):
                    mass = float(w[a:b].sum())
                    if mass <= 0:
                        continue
                    rows.append(t[a:b])
                    row_weights.append(w[a:b] / mass)
                    owner.append(i)
                    share.append(mass / total)
                continue
        rows.append(t)
        row_weights.append(w)
        owner.append(i)
        share.append(1.0)
    return Windows(
        rows,
        row_weights,
        np.asarray(owner, dtype=np.int64),
        np.asarray(share, np.float32),
        len(texts),
    )


#: the norm map's inputs beyond the prediction's direction (`norm_features`); a norm map is
#: D + NORM_EXTRA weights, then the fewest and the most characters of the texts it was fitted
#: on (other texts are read as if clipped to that range: no extrapolation in `b²`)
NORM_EXTRA = 6


def norm_features(pred: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """The norm map's inputs (N, D + NORM_EXTRA): each prediction's direction; the log of its
    length `a` and of its text's characters `b`, `a²`, `b²`, `ab`; and 1 (float32)."""
    pred = np.asarray(pred, dtype=np.float32)
    n = np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), np.float32(1e-12))
    a = np.log(n)
    b = np.log(np.maximum(np.asarray(chars, np.float32), np.float32(1.0)))[:, None]
    one = np.ones((len(pred), 1), np.float32)
    return np.hstack([pred / n, a, b, a * a, b * b, a * b, one])


def apply_norm_map(pred: np.ndarray, chars: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """`pred` with each row's length replaced by the norm map's estimate of the teacher's
    (`exp(norm_features · weights)`, the characters clipped to the map's range; NORM_EXTRA,
    student/calibrate.py); rows of zeros stay zeros."""
    pred = np.asarray(pred, dtype=np.float32)
    n = np.linalg.norm(pred, axis=1)
    weights, (lo, hi) = norm[:-2].astype(np.float32), norm[-2:]
    feats = norm_features(pred, np.clip(np.asarray(chars), lo, hi))
    # einsum, not `@`: a BLAS call here leaves its threads spinning beside the next batch
    length = np.exp(np.einsum("ij,j->i", feats, weights))
    scale = np.where(n > 0, length / np.maximum(n, np.float32(1e-12)), np.float32(0.0))
    return pred * scale[:, None].astype(np.float32)


def lengths_mapped(pred: np.ndarray, norm: np.ndarray | None, chars) -> np.ndarray:
    """`pred` with the lengths of the norm map `norm` (`apply_norm_map`), or as it is."""
    return pred if norm is None else apply_norm_map(pred, np.asarray(chars), norm)


def read_chars(texts: Sequence[str], max_chars: int) -> np.ndarray:
    """How many characters of each (cleaned) text a model reading `max_chars` reads: the
    norm map's input."""
    return np.minimum([len(t) for t in texts], max_chars).astype(np.int64)


@dataclass
class StudentConfig:
    vocab_size: int
    embedding_dim: int = 256  # character embedding size
    hidden_size: int = 256  # LSTM units per direction
    num_layers: int = 1  # stacked BiLSTM layers
    dropout: float = 0.1  # on embeddings and LSTM outputs while training
    output_dim: int = 384  # the teacher's dimension
    lexicon_size: int = 0  # words of the word path (runtime/lexicon.py); 0: none
    lexicon_dim: int = 0  # their vectors' size

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Encoder:
    """Sentences → vectors: what `Student`, `QuantizedStudent`, `OnnxStudent` and
    `LightStudent` share. A subclass sets `weighter` and `meta` and defines `dim`, `mean`,
    `similarity_map` and `encode_prepared` (the network); `encode` is the same for all."""

    weighter: Any
    meta: dict[str, Any]
    #: the model's word path (`runtime.lexicon.Lexicon`), None for a model without one
    lexicon: Any = None
    max_chars: int = 1024
    #: long texts are read in windows of this many characters (`windows`); 0: whole
    window: int = WINDOW

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def mean(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def similarity_map(self) -> np.ndarray:
        """The (D, D) map the similarity vectors apply to the predictions (calibrate.py)."""
        raise NotImplementedError

    def encode_prepared(
        self, texts: Sequence[str], weights: Sequence[np.ndarray], batch_size: int = 256
    ) -> np.ndarray:
        """The predictions (N, D) of cleaned texts with their character weights (`prepare`):
        the network's, plus the word path's where the model has one."""
        win = windows(texts, weights, self.window, self.max_chars)
        out = win.combine(self.network_prepared(win.rows, win.weights, batch_size))
        lexicon = self.current_lexicon()
        if lexicon is not None:
            out += lexicon.pooled(texts, weights, self.weighter.words, self.max_chars)
        return out

    def network_prepared(
        self, texts: Sequence[str], weights: Sequence[np.ndarray], batch_size: int = 256
    ) -> np.ndarray:
        """The character network's predictions (N, D) alone."""
        raise NotImplementedError

    def current_lexicon(self):
        """The word path `encode_prepared` adds (the model's, as its weights are now)."""
        return self.lexicon

    def use_segmenter(self, kind: str | None) -> None:
        """Cut words with `kind` ("jieba" or "fast") instead of the segmenter the model
        records (same IDF table and smoothing). Both cut jieba's words (`fast` insists on
        rjieba, which `jieba` uses wherever it is installed: text/segment.py); None keeps
        the model's."""
        from ltd_bert.text.weights import Weighter

        w = self.weighter
        if kind and kind != w.segmenter:
            self.weighter = Weighter(w.idf, w.eps, w.user_dict, segmenter=kind)

    def prepare(self, sentences: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
        """The cleaned texts and their character weights (`Weighter`)."""
        from ltd_bert.text.clean import clean_text

        texts = [clean_text(s) for s in sentences]
        return texts, self.weighter.char_weights_many(texts)

    @property
    def whitening_map(self) -> np.ndarray | None:
        """`similarity_map` when the model whitens (`whiten` > 0 in its config), else None."""
        return self.similarity_map if self.whiten else None

    @property
    def whiten(self) -> float:
        """The whitening strength α of the similarity vectors (0: none; calibrate.py)."""
        return float(self.meta.get("whiten", 0.0))

    @property
    def mean_scale(self) -> float:
        """How much of the mean the similarity vectors keep (calibrate.py)."""
        return float(self.meta.get("mean_scale", DEFAULT_SCALE))

    @property
    def norm_map(self) -> np.ndarray | None:
        """The norm map that gives the similarity vectors their lengths (D + NORM_EXTRA
        weights and a range of characters: `apply_norm_map`, calibrate.py), or None: the
        predictions keep their own."""
        w = self.meta.get("norm_map")
        return None if w is None else np.asarray(w, dtype=np.float32)

    def read_chars(self, texts: Sequence[str]) -> np.ndarray:
        """How many characters of each (cleaned) text the model reads (`read_chars`)."""
        return read_chars(texts, self.max_chars)

    def similarity(self, pred: np.ndarray, chars: Sequence[int] | np.ndarray) -> np.ndarray:
        """The similarity vectors (`encode`'s default) of predictions `pred` (N, D) of texts
        of which the model read `chars` characters (`read_chars`): lengths from the norm map,
        the whitening, plus the share of the mean; rows of empty texts (0) stay zeros."""
        chars = np.asarray(chars)
        vecs = lengths_mapped(pred, self.norm_map, chars)
        w = self.whitening_map
        if w is not None:
            vecs = vecs @ w.T
        if self.mean_scale:  # a new array: `pred` itself is never changed
            vecs = vecs + (chars > 0)[:, None] * (self.mean_scale * self.mean)
        return vecs

    def space_scale(self, space: str) -> float:
        """The multiple of the mean that vectors of `space` carry."""
        if space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, not {space!r}")
        return {"similarity": self.mean_scale, "teacher": 1.0, "centred": 0.0}[space]

    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 256,
        normalize: bool = False,
        space: str = "similarity",
    ) -> np.ndarray:
        """Sentence vectors (N, D), in input order; an empty sentence gives zeros.

        The student predicts the teacher's vector minus the training mean (the common
        direction all teacher vectors share). `space`: "similarity" (default) gives each
        prediction the length the norm map estimates for the teacher's (`norm_map`, when the
        model has one), applies the partial whitening (`whiten`, the map `similarity`) and
        adds the share of the mean (`mean_scale`), all chosen without labels
        (student/calibrate.py): the best vectors to compare by cosine; "teacher" adds the
        whole mean (vectors in the teacher's own space); "centred" adds nothing.
        """
        scale = self.space_scale(space)
        texts, weights = self.prepare(sentences)
        vecs = self.encode_prepared(texts, weights, batch_size)
        if space == "similarity":
            vecs = self.similarity(vecs, self.read_chars(texts))
        elif scale:
            vecs[[i for i, t in enumerate(texts) if t]] += scale * self.mean
        if normalize:
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.maximum(norms, 1e-12)
        return vecs


def read_model_folder(p: Path) -> tuple[dict[str, Any], StudentConfig, list[str], Any]:
    """config.json, the student config, vocab.json and the weighter of a model folder, with
    a clear error for whatever is missing, unreadable or from a newer version."""
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    if not p.is_dir():
        raise ModelError(f"{p}: no such model folder (train one with `ltd train`)")
    for name in MODEL_FILES:
        if not (p / name).is_file():
            raise ModelError(f"{p}: model folder is missing {name}")
    try:
        meta = json.loads((p / "config.json").read_text(encoding="utf-8"))
        vocab = json.loads((p / "vocab.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{p}: unreadable config.json or vocab.json ({exc})") from None
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            f"{p}: written by ltd-bert {meta.get('tool_version')} (model format "
            f"{meta.get('format_version')}); this is {__version__}: upgrade ltd-bert"
        )
    try:
        config = StudentConfig.from_dict(meta["student"])
        eps = float(meta["eps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{p}/config.json: missing or bad entry {exc}") from None
    if config.vocab_size != len(vocab):
        raise ModelError(
            f"{p}: vocab.json has {len(vocab)} entries, config says {config.vocab_size}"
        )
    norm = meta.get("norm_map")
    width = config.output_dim + NORM_EXTRA + 2
    if norm is not None and (not isinstance(norm, list) or len(norm) != width):
        raise ModelError(f"{p}/config.json: norm_map must be a list of {width} numbers")
    weighter = Weighter(load_idf(p / "idf.tsv.gz"), eps, segmenter=meta.get("segmenter", "jieba"))
    if meta.get("idf_sha256") and weighter.idf.sha256 != meta["idf_sha256"]:
        raise ModelError(f"{p}/idf.tsv.gz differs from the IDF the model was trained with")
    return meta, config, vocab, weighter
