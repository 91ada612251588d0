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


_segmenters: dict[str | None, object] = {}


def get_segmenter(user_dict: str | None = None):
    """A jieba tokenizer (one per user dictionary, initialised once per process)."""
    seg = _segmenters.get(user_dict)
    if seg is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        if user_dict is None:
            seg = jieba.dt
        else:
            seg = jieba.Tokenizer()
            seg.load_userdict(user_dict)
        seg.initialize()
        _segmenters[user_dict] = seg
    return seg


def segment(text: str, user_dict: str | None = None) -> list[str]:
    """jieba words of an (already cleaned) text, HMM on, covering every character."""
    return get_segmenter(user_dict).lcut(text, HMM=True)


class Weighter:
    """Character weights of sentences from an IDF table and a smoothing `eps`."""

    def __init__(self, idf: IdfTable, eps: float = DEFAULT_EPS, user_dict: str | None = None):
        if eps < 0:
            raise ValueError("eps must be >= 0")
        self.idf = idf
        self.eps = float(eps)
        self.user_dict = user_dict
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
        for word in segment(text, self.user_dict):
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
        return {"eps": self.eps, "idf_sha256": self.idf.sha256, "idf_source": self.idf.source}


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
