"""Sentence → cleaned text → jieba words → per-character weights (the heart of LTD-BERT).

One function, `Weighter.char_weights`, serves the teacher, the student and `encode`, so the
weights are identical everywhere.

Policy (documented in the README):
- Cleaning (`clean_text`): NFKC, control and format characters removed (this includes
  zero-width spaces and BOMs), every run of white space becomes one space, ends stripped.
  All later steps see only the cleaned text; it is what the HDF5 file stores.
- A word's IDF (`idf(w.lower())`, unseen words get the table's default) is shared by its
  *content* characters: each gets `idf(w) / k` where `k` is the number of content
  characters of the word, then `+ eps`.
- Punctuation (Unicode category P*), white space and other separators (Z*) are not content:
  weight 0, no `eps` either. Latin words and numbers are words like any other (jieba keeps
  `iPhone12` or `3.5` together); symbols such as emoji or currency signs are content.
- The weights are divided by their sum. A text with no content character at all (only
  punctuation) gets uniform weights, so weights always sum to 1 for a non-empty text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ltd_bert.idf import IdfTable

DEFAULT_EPS = 1.0

_SPACE_RUN = re.compile(r"\s+")
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def clean_text(text: str) -> str:
    """NFKC, drop control/format characters, fold white space to single spaces, strip."""
    text = unicodedata.normalize("NFKC", text)
    if text.isprintable():  # no C* characters, and no white space but " ": the fast path
        return _SPACE_RUN.sub(" ", text).strip() if "  " in text else text.strip()
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _SPACE_RUN.sub(" ", text).strip()


def is_content_char(ch: str) -> bool:
    """False for punctuation, white space and separators: they get weight 0."""
    if ch.isspace():
        return False
    return unicodedata.category(ch)[0] not in "PZ"


def is_content_word(word: str) -> bool:
    return any(is_content_char(ch) for ch in word)


SEGMENTERS = ("jieba", "fast")
_segmenters: dict[tuple[str | None, str], object] = {}


def get_segmenter(user_dict: str | None = None, kind: str = "jieba"):
    """A segmenter, initialised once per process: `jieba` (the reference) or `fast`
    (`FastJieba`: rjieba for Chinese-only blocks, measured and documented differences)."""
    from ltd_bert.errors import InputError

    if kind not in SEGMENTERS:
        raise InputError(f"--segmenter must be one of {', '.join(SEGMENTERS)}")
    seg = _segmenters.get((user_dict, kind))
    if seg is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        if user_dict is None:
            seg = jieba.dt
        else:
            seg = jieba.Tokenizer()
            try:
                seg.load_userdict(user_dict)
            except ValueError as exc:  # jieba: "dictionary file ... must be utf-8"
                raise InputError(
                    f"{user_dict}: not a usable jieba user dictionary ({exc})"
                ) from None
        if kind == "fast":
            if user_dict is not None:
                raise InputError("--segmenter fast does not take a user dictionary")
            seg = FastJieba(seg)
        seg.initialize()
        _segmenters[(user_dict, kind)] = seg
    return seg


# jieba's own block structure (jieba.Tokenizer.cut, default mode): the text is split into
# runs of these characters, each cut on its own; anything else is yielded a character at a
# time, white space as is.
_JIEBA_BLOCK = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)", re.U)
_NON_HAN_IN_BLOCK = re.compile(r"[a-zA-Z0-9+#&\._%\-]")


class FastJieba:
    """jieba's default segmentation (dictionary, HMM on), nearly word for word, ~3x faster.

    The text is split into jieba's own blocks; blocks of Chinese characters only are cut by
    rjieba (the same dictionary, DAG and HMM in Rust), blocks with Latin letters, digits or
    symbols by jieba itself (rjieba keeps `24-25` or `nano-NaH` whole, jieba does not);
    block results are cached. Measured against `jieba.lcut` on 40,006 corpus lines: 1 line
    differs (an HMM tie: `常在` vs `常 / 在`). So it is not the default: a teacher file and
    its model record which segmenter made their weights, and always use the same one.
    """

    CACHE = 500_000

    def __init__(self, jieba_tokenizer):
        self.jieba = jieba_tokenizer
        try:
            import rjieba
        except ImportError:
            from ltd_bert.errors import InputError

            raise InputError("--segmenter fast needs rjieba: pip install rjieba") from None
        self._rust = rjieba.cut
        self._cache: dict[str, list[str]] = {}

    def initialize(self) -> None:
        self.jieba.initialize()

    def _cut_block(self, block: str) -> list[str]:
        words = self._cache.get(block)
        if words is None:
            if not _NON_HAN_IN_BLOCK.search(block):
                words = self._rust(block)
            else:
                words = self.jieba.lcut(block, HMM=True)
            if len(self._cache) < self.CACHE:
                self._cache[block] = words
        return words

    def lcut(self, text: str, HMM: bool = True) -> list[str]:  # noqa: N803 (jieba's name)
        if not HMM:
            return self.jieba.lcut(text, HMM=False)
        out: list[str] = []
        for i, part in enumerate(_JIEBA_BLOCK.split(text)):
            if not part:
                continue
            if i % 2:  # a block
                out.extend(self._cut_block(part))
            else:  # jieba: white space runs split per character, others char by char
                out.extend(part)
        return out


def segment(text: str, user_dict: str | None = None, kind: str = "jieba") -> list[str]:
    """jieba words of an (already cleaned) text, HMM on, covering every character."""
    return get_segmenter(user_dict, kind).lcut(text, HMM=True)


class Weighter:
    """Character weights of sentences from an IDF table and a smoothing `eps`."""

    def __init__(
        self,
        idf: IdfTable,
        eps: float = DEFAULT_EPS,
        user_dict: str | None = None,
        segmenter: str = "jieba",
    ):
        if eps < 0:
            raise ValueError("eps must be >= 0")
        self.idf = idf
        self.eps = float(eps)
        self.user_dict = user_dict
        self.segmenter = segmenter
        self._seg = get_segmenter(user_dict, segmenter)
        self._word_cache: dict[str, tuple[float, ...]] = {}

    def word_char_weights(self, word: str) -> tuple[float, ...]:
        """Unnormalised weights of the characters of one word (cached per word)."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        content = [is_content_char(ch) for ch in word]
        k = sum(content)
        if k:
            share = self.idf.get(word) / k + self.eps
            out = tuple(share if c else 0.0 for c in content)
        else:
            out = (0.0,) * len(word)
        if len(self._word_cache) < 2_000_000:
            self._word_cache[word] = out
        return out

    def char_weights(self, text: str) -> np.ndarray:
        """Weights (float32, sum 1) of each character of an already *cleaned* text."""
        if not text:
            return np.zeros(0, dtype=np.float32)
        raw: list[float] = []
        for word in self._seg.lcut(text, HMM=True):
            raw.extend(self.word_char_weights(word))
        w = np.asarray(raw, dtype=np.float64)
        total = w.sum()
        if total <= 0:
            w = np.full(len(text), 1.0 / len(text))
        else:
            w /= total
        return w.astype(np.float32)

    def __call__(self, sentence: str) -> tuple[str, np.ndarray]:
        """Clean a raw sentence and weigh its characters: `(clean_text, weights)`."""
        text = clean_text(sentence)
        return text, self.char_weights(text)

    def settings(self) -> dict:
        """What a teacher file records of the weights (the IDF path absolute)."""
        from ltd_bert.idf import recorded_source

        return {
            "eps": self.eps,
            "idf_sha256": self.idf.sha256,
            "idf_source": recorded_source(self.idf.source),
            "segmenter": self.segmenter,
        }


def token_weights(
    char_weights: np.ndarray, offsets: Sequence[tuple[int, int]] | np.ndarray, text_start: int = 0
) -> np.ndarray:
    """Map character weights onto tokens through a fast tokenizer's offset mapping.

    `offsets` are `(start, end)` character spans in the string given to the tokenizer,
    which is `prefix + text` with `len(prefix) == text_start`. A token's weight is the sum
    of the weights of the text characters it covers; special tokens (`(0, 0)`) and prefix
    tokens cover none and get 0.
    """
    n = len(char_weights)
    cum = np.concatenate([[0.0], np.cumsum(char_weights, dtype=np.float64)])
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    start = np.clip(off[:, 0] - text_start, 0, n)
    end = np.clip(off[:, 1] - text_start, 0, n)
    end = np.maximum(end, start)
    return (cum[end] - cum[start]).astype(np.float32)
