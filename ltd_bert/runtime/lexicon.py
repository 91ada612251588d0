"""The word path of a student (optional): a vector per frequent word, summed with the
sentence's weights and added to the BiLSTM's pooled vector.

The teacher's vector is a weighted mean over its tokens, and much of what a character BiLSTM
gets wrong is which words a text holds: on 98,304 corpus lines the shipped model never saw,
a linear map from the weighted bag of the 16,000 most frequent words to the model's error
took the held-out centred fidelity from 0.809 to 0.856 (docs/research-record-2026.md). So
the student may carry a lexicon: words (jieba's, the ones the character weights are made
from), each a `dim`-vector, projected to the teacher's dimension:

    lexicon(text) = proj · Σ_words (Σ of the word's character weights) · embedding[word]

Words outside the lexicon add nothing, but for Latin ones where the lexicon holds pieces
(entries `##piece`, `WordIndex`): such a word is cut into its pieces, longest first, and
each piece adds its row with its characters' weights (a character network spells English
out letter by letter; docs/pipeline.md, `--lexicon-pieces`). It costs one row lookup per word and
one (dim × D) product per sentence, against the BiLSTM's 8·H² per character.

In a model folder: `lexicon.json` (the words; row i + 1 of the embedding is word i, row 0
is zeros) and `lexicon.safetensors`: `embedding` in int8 with one float32 scale per row
(`embedding.scale`, max|row| / 127: 1 byte per number, a quarter of float32), and `proj`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from pathlib import Path

import numpy as np

WORDS_FILE = "lexicon.json"
TENSORS_FILE = "lexicon.safetensors"
FILES = (WORDS_FILE, TENSORS_FILE)

#: texts whose words are listed at once, and whose word rows are summed in one product
CHUNK = 1024
TEXTS_AT_ONCE = 32  # 128: 0.74x the speed, 64: 0.9x (6,000 corpus lines, 1 thread)


class Lexicon:
    """A word list with its vectors; `pooled` gives each text's lexicon vector (N, D)."""

    def __init__(self, words: Sequence[str], embedding: np.ndarray, proj: np.ndarray):
        if embedding.shape[0] != len(words) + 1:
            raise ValueError(
                f"lexicon: {len(words)} words but {embedding.shape[0]} embedding rows "
                "(expected one more: row 0 is the unknown word)"
            )
        if proj.shape[1] != embedding.shape[1]:
            raise ValueError(f"lexicon: proj {proj.shape} does not fit embedding {embedding.shape}")
        self.words = list(words)
        self.index = word_index(self.words)
        self.embedding = np.ascontiguousarray(embedding, dtype=np.float32)
        self.proj_t = np.ascontiguousarray(proj.T, dtype=np.float32)  # (dim, D)
        self._projected = None  # torch: embedding · proj (rows, D), made when first used

    @property
    def dim(self) -> int:
        return self.embedding.shape[1]

    def char_ids(self, words: Sequence[str]) -> list[int]:
        """Each character's word id (0: not in the lexicon), in text order."""
        return char_word_ids(self.index, words)

    def padded_char_ids(
        self, texts: Sequence[str], words_of: Callable[[str], Sequence[str]], width: int
    ) -> np.ndarray:
        """`padded_word_ids` with this lexicon's words."""
        return padded_word_ids(self.index, texts, words_of, width)

    def pooled(
        self,
        texts: Sequence[str],
        weights: Sequence[np.ndarray],
        words_of: Callable[[str], Sequence[str]],
        max_chars: int,
    ) -> np.ndarray:
        """The lexicon vectors (N, D) of `texts` with their character `weights`, words from
        `words_of(text)`; a text is read to `max_chars` characters as the network reads it
        (weights renormalised), and an empty text gives zeros."""
        out = np.zeros((len(texts), self.proj_t.shape[1]), dtype=np.float32)
        get = self.index.get
        for lo in range(0, len(texts), CHUNK):
            # one entry per word of the chunk's texts (its text, id, length), built with
            # `map` over the flat word list; `word_mass` takes each word's mass from the
            # cumulative sums of all the kept character weights at once, and leaves out the
            # words outside the lexicon
            idx = [i for i in range(lo, min(lo + CHUNK, len(texts))) if texts[i]]
            if not idx:
                continue
            words = [words_of(texts[i]) for i in idx]
            flat = list(chain.from_iterable(words))
            ids = np.fromiter(map(get, flat, repeat(0)), np.int64, len(flat))
            lens = np.fromiter(map(len, flat), np.int64, len(flat))
            rows = np.repeat(np.asarray(idx), np.fromiter(map(len, words), np.int64, len(idx)))
            rows, ids, lens = self.index.with_pieces(flat, rows, ids, lens)
            cut = [len(texts[i]) > max_chars for i in idx]
            kept = [
                w[:max_chars] if len(w) > max_chars else w for w in map(weights.__getitem__, idx)
            ]
            rows, ids, mass = word_mass(rows, ids, lens, kept, cut)
            if len(rows):
                self._sum_rows(out, rows, ids, mass)
        return out

    def _sum_rows(self, out: np.ndarray, rows, ids, mass) -> None:
        """out[text] = proj · Σ mass · embedding[id] over each text's (consecutive) words.
        Where PyTorch is loaded already (the torch runtime), one `embedding_bag` of the
        chunk's words over the projected rows (a weighted sum of rows, one bag per text);
        otherwise a block of TEXTS_AT_ONCE texts' words weighted into a (texts × words)
        matrix times their rows (numpy's reduceat is ~4× slower on rows this wide)."""
        torch = sys.modules.get("torch")
        if torch is not None:
            if self._projected is None:  # every row times proj, once (~0.05 s at 16,000)
                self._projected = torch.from_numpy(self.embedding) @ torch.from_numpy(self.proj_t)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            starts = np.searchsorted(rows, np.arange(lo, hi))  # empty bags sum to zeros
            out[lo:hi] = torch.nn.functional.embedding_bag(
                torch.from_numpy(ids),
                self._projected,
                torch.from_numpy(starts),
                mode="sum",
                per_sample_weights=torch.from_numpy(mass.astype(np.float32)),
            ).numpy()
            return
        bounds = np.r_[np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]), len(rows)]
        for b in range(0, len(bounds) - 1, TEXTS_AT_ONCE):
            edge = bounds[b : b + TEXTS_AT_ONCE + 1]
            lo, hi = edge[0], edge[-1]
            which = np.repeat(np.arange(len(edge) - 1), np.diff(edge))
            weigh = np.zeros((len(edge) - 1, hi - lo), dtype=np.float32)
            weigh[which, np.arange(hi - lo)] = mass[lo:hi]
            out[rows[edge[:-1]]] = (weigh @ self.embedding[ids[lo:hi]]) @ self.proj_t

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        (folder / WORDS_FILE).write_text(json.dumps(self.words, ensure_ascii=False), "utf-8")
        q, scale = quantize_rows(self.embedding)
        save_file(
            {"embedding": q, "embedding.scale": scale, "proj": self.proj_t.T.copy()},
            str(folder / TENSORS_FILE),
        )

    @classmethod
    def load(cls, folder: Path) -> Lexicon | None:
        """The folder's lexicon, None when it has none; a `ModelError` for a broken one."""
        from ltd_bert.common.errors import ModelError

        have = [(folder / f).is_file() for f in FILES]
        if not any(have):
            return None
        if not all(have):
            missing = [f for f, h in zip(FILES, have, strict=True) if not h]
            raise ModelError(f"{folder}: model folder is missing {missing[0]}")
        from safetensors.numpy import load_file

        try:
            words = json.loads((folder / WORDS_FILE).read_text(encoding="utf-8"))
            t = load_file(str(folder / TENSORS_FILE))
            table = t["embedding"].astype(np.float32)
            if "embedding.scale" in t:
                table *= t["embedding.scale"][:, None]
            return cls(words, table, t["proj"])
        except Exception as exc:  # json, safetensors, a missing key, a shape
            raise ModelError(f"{folder}: unreadable lexicon ({exc})") from None


def word_mass(
    rows: Sequence[int], ids: Sequence[int], lens: Sequence[int], kept: list[np.ndarray], cut
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (text, word id, mass) of each lexicon word of some texts, a word's mass the sum
    of its characters' weights. `rows`, `ids`, `lens`: one entry per word (texts in order,
    each text's words consecutive); `kept`: each text's weights as the network reads them
    (its first max_chars); `cut`: whether that dropped characters, in which case the kept
    weights are renormalised (uniform when none weighs). Words outside the lexicon or of no
    mass are left out. Vectorised over all the texts (no per-text numpy calls)."""
    sizes = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]  # each text's first character in `w`
    cum = np.r_[0.0, np.cumsum(np.concatenate(kept), dtype=np.float64)]
    rows_a = np.asarray(rows, dtype=np.int64)
    lens_a = np.asarray(lens, dtype=np.int64)
    text = np.r_[0, np.cumsum(rows_a[1:] != rows_a[:-1])]  # each word's text: 0, 1, ...
    ends = np.cumsum(lens_a)
    first = np.r_[0, np.flatnonzero(np.diff(text)) + 1]  # each text's first word
    ends -= np.repeat(ends[first] - lens_a[first], np.diff(np.r_[first, len(text)]))
    n = sizes[text]
    begins = np.minimum(ends - lens_a, n)
    ends = np.minimum(ends, n)
    mass = cum[starts[text] + ends] - cum[starts[text] + begins]
    if any(cut):
        totals = (cum[starts + sizes] - cum[starts])[text]
        renorm = np.asarray(cut)[text]
        safe = np.where(totals > 0, totals, 1.0)
        spread = np.where(totals > 0, mass / safe, (ends - begins) / n)
        mass = np.where(renorm, spread, mass)
    ids_a = np.asarray(ids, dtype=np.int64)
    keep = (ids_a > 0) & (mass > 0)
    return rows_a[keep], ids_a[keep], mass[keep]


#: a lexicon entry that starts so is a piece of Latin words, not a word (`WordIndex`)
PIECE = "##"
SHORTEST_PIECE = 2
CUTS_KEPT = 100_000  # cut words remembered by a `WordIndex`


def spelled(word: str) -> bool:
    """Whether a word is one pieces may cut: ASCII letters and digits, a letter among them."""
    return word.isascii() and word.isalnum() and not word.isdigit()


class WordIndex(dict):
    """word → its id in a lexicon (row i + 1; 0 is every other word), and the lexicon's
    pieces: entries `##piece` (lower case) stand for that piece of a Latin word outside the
    lexicon. A character network spells such a word out letter by letter and its word row
    is missing; its pieces, longest first from the left (as WordPiece cuts), give it rows.
    A lexicon without pieces cuts nothing."""

    def __init__(self, words: Sequence[str]):
        super().__init__((w, i + 1) for i, w in enumerate(words))
        self.pieces = {w[len(PIECE) :]: i for w, i in self.items() if w.startswith(PIECE)}
        self.longest = max(map(len, self.pieces), default=0)
        self._cuts: dict[str, list[tuple[int, int]]] = {}

    def segments(self, word: str) -> list[tuple[int, int]]:
        """(length, id) of the parts of `word`: itself when in the lexicon (or when pieces
        do not apply), else its pieces, the characters no piece covers as id 0."""
        i = self.get(word, 0)
        if i or not self.pieces or not spelled(word):
            return [(len(word), i)]
        cut = self._cuts.get(word)
        if cut is None:
            if len(self._cuts) >= CUTS_KEPT:  # a server's stream of new words: bounded
                self._cuts.clear()
            cut = self._cuts[word] = cut_pieces(word.lower(), self.pieces, self.longest)
        return cut

    def with_pieces(self, flat: Sequence[str], rows, ids, lens):
        """`Lexicon.pooled`'s per-word arrays (text, id, length) with each Latin word
        outside the lexicon replaced by its pieces (unchanged without pieces)."""
        if not self.pieces:
            return rows, ids, lens
        cuts = {}
        for j in np.flatnonzero(ids == 0):
            seg = self.segments(flat[j])
            if len(seg) > 1 or seg[0][1]:
                cuts[j] = seg
        if not cuts:
            return rows, ids, lens
        counts = np.ones(len(ids), dtype=np.int64)
        for j, seg in cuts.items():
            counts[j] = len(seg)
        rows, ids, lens = (np.repeat(a, counts) for a in (rows, ids, lens))
        starts = np.cumsum(counts) - counts
        for j, seg in cuts.items():
            at = slice(starts[j], starts[j] + len(seg))
            lens[at], ids[at] = zip(*seg, strict=True)
        return rows, ids, lens


def cut_pieces(word: str, pieces: dict[str, int], longest: int) -> list[tuple[int, int]]:
    """(length, id) of `word` cut greedily into the longest pieces from the left; runs of
    characters that no piece starts are one part of id 0."""
    out: list[tuple[int, int]] = []
    pos, n = 0, len(word)
    while pos < n:
        for size in range(min(longest, n - pos), SHORTEST_PIECE - 1, -1):
            i = pieces.get(word[pos : pos + size])
            if i:
                out.append((size, i))
                pos += size
                break
        else:
            if out and out[-1][1] == 0:
                out[-1] = (out[-1][0] + 1, 0)
            else:
                out.append((1, 0))
            pos += 1
    return out


def word_index(words: Sequence[str]) -> WordIndex:
    """word → its id in a lexicon of `words` (row i + 1; 0 is every other word)."""
    return WordIndex(words)


def char_word_ids(index: WordIndex, words: Sequence[str]) -> list[int]:
    """Each character's word id under `index` (0: not in the lexicon), in text order; with
    pieces, a Latin word outside it has its pieces' ids."""
    out: list[int] = []
    if index.pieces:
        for w in words:
            for size, i in index.segments(w):
                out.extend((i,) * size)
        return out
    get = index.get
    for w in words:
        out.extend((get(w, 0),) * len(w))
    return out


def padded_word_ids(
    index: WordIndex,
    texts: Sequence[str],
    words_of: Callable[[str], Sequence[str]],
    width: int,
) -> np.ndarray:
    """(B, width) int64: each character's word id as `batch_arrays` lays the characters out
    (texts cut to `width`), 0 on padding: what `LexiconPath` reads in training."""
    out = np.zeros((len(texts), width), dtype=np.int64)
    for i, text in enumerate(texts):
        if text:
            ids = char_word_ids(index, words_of(text))[:width]
            out[i, : len(ids)] = ids
    return out


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their float32 scales (max|row| / 127; a zero row keeps scale 0)."""
    scale = (np.abs(table).max(axis=1) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(table / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale


def load_lexicon(folder: Path, config) -> Lexicon | None:
    """A model folder's lexicon, checked against its `StudentConfig` (`lexicon_size`)."""
    from ltd_bert.common.errors import ModelError

    lexicon = Lexicon.load(folder)
    size = lexicon and len(lexicon.words)
    if (size or 0) != config.lexicon_size or (lexicon and lexicon.dim != config.lexicon_dim):
        raise ModelError(
            f"{folder}: config.json says a lexicon of {config.lexicon_size} words × "
            f"{config.lexicon_dim}, {WORDS_FILE} has "
            + (f"{size} × {lexicon.dim}" if lexicon else "none")
        )
    return lexicon
