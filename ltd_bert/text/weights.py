"""Sentence → cleaned text → jieba words → per-character weights (the heart of LTD-BERT).

One function, `Weighter.char_weights`, serves the teacher, the student and `encode`, so the
weights are identical everywhere.

Policy (documented in docs/pipeline.md):
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

from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from ltd_bert.text.clean import clean_text, is_content_char
from ltd_bert.text.segment import get_segmenter

if TYPE_CHECKING:
    from ltd_bert.text.idf import IdfTable


DEFAULT_EPS = 1.0

#: texts whose words `Weighter.words` keeps (more than one encode block)
WORDS_KEPT = 50_000


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
        self._words: dict[str, list[str]] = {}  # the words of texts weighed lately

    def word_char_weights(self, word: str) -> tuple[float, ...]:
        """Unnormalised weights of the characters of one word (cached per word)."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        if word.isalnum():  # letters and numbers only (most words): all content, 2.7x faster
            out = (self.idf.get(word) / len(word) + self.eps,) * len(word)
        else:
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
        return self.char_weights_many([text])[0]

    def char_weights_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """`char_weights` of each cleaned text: the words weighed one by one (cached per
        word), the sums and divisions once for all the texts (~2 us a line less than one
        text at a time)."""
        cached = self._word_cache.get  # inlined: most words are cached (a call each is ~8 %)
        weigh, lcut, kept = self.word_char_weights, self._seg.lcut, self._words
        pieces: list[tuple[float, ...]] = []
        for text in texts:
            if not text:
                continue
            words = lcut(text, HMM=True)
            pieces += [cached(word) or weigh(word) for word in words]
            if len(kept) >= WORDS_KEPT:
                kept.clear()
            kept[text] = words
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        w = np.fromiter(chain.from_iterable(pieces), dtype=np.float64, count=int(lengths.sum()))
        ends = np.cumsum(lengths)
        full = lengths > 0
        totals = np.zeros(len(texts))
        totals[full] = np.add.reduceat(w, (ends - lengths)[full]) if full.any() else 0.0
        uniform = full & (totals <= 0)  # no content character: every character the same
        totals[uniform] = lengths[uniform]
        w[np.repeat(uniform, lengths)] = 1.0
        w /= np.repeat(np.where(full, totals, 1.0), lengths)
        return np.split(w.astype(np.float32), ends[:-1])

    def words(self, text: str) -> list[str]:
        """The words of an already cleaned text (kept from its `char_weights` when recent:
        a model's lexicon reads the words its weights were made from)."""
        words = self._words.get(text)
        return words if words is not None else self._seg.lcut(text, HMM=True)

    def __call__(self, sentence: str) -> tuple[str, np.ndarray]:
        """Clean a raw sentence and weigh its characters: `(clean_text, weights)`."""
        text = clean_text(sentence)
        return text, self.char_weights(text)

    def settings(self) -> dict:
        """What a teacher file records of the weights (the IDF path absolute)."""
        from ltd_bert.text.idf import recorded_source

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
