"""Word segmentation: jieba's default cut (dictionary, HMM on), initialised once per process.

`jieba` runs it through `FastJieba` (rjieba's route for Chinese-only blocks, jieba's own HMM
and jieba for the rest: the same words, ~2-4× faster) when rjieba is installed and no user
dictionary is given, else through jieba itself; `fast` insists on `FastJieba`.
`LTD_JIEBA=python` forces jieba itself (for comparisons). `rjieba` (`RustJieba`) is rjieba's
own cut, HMM included: one call per text, faster again, and not word for word jieba's (about
1 line in 100 differs, nearly all runs such as `24-25` kept whole); a model records which it
cuts with."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENTERS = ("jieba", "fast", "rjieba")


_segmenters: dict[tuple[str | None, str], object] = {}


def get_segmenter(user_dict: str | None = None, kind: str = "jieba", load: bool = False):
    """A segmenter, initialised once per process: `jieba` (`FastJieba` where rjieba is
    installed and there is no user dictionary, else jieba's own) or `fast` (`FastJieba`;
    an error without rjieba). Both give jieba's words.

    Without a user dictionary, jieba's dictionary starts lazily (`start_lazily`: words read
    from an sqlite copy until a few hundred sentences have been cut, then the whole of it);
    `load` loads it whole now (before forking workers that should share it)."""
    from ltd_bert.common.errors import InputError

    if kind not in SEGMENTERS:
        raise InputError(f"--segmenter must be one of {', '.join(SEGMENTERS)}")
    seg = _segmenters.get((user_dict, kind))
    if seg is not None:
        if load and user_dict is None:
            load_dictionary(seg.jieba if isinstance(seg, FastJieba) else seg)
        return seg
    import jieba

    jieba.setLogLevel(logging.WARNING)
    if user_dict is None:
        seg = jieba.dt
        if load or not start_lazily(seg):
            load_dictionary(seg)
    else:
        seg = jieba.Tokenizer()
        try:
            seg.load_userdict(user_dict)
        except ValueError as exc:  # jieba: "dictionary file ... must be utf-8"
            raise InputError(f"{user_dict}: not a usable jieba user dictionary ({exc})") from None
        seg.initialize()
    if kind in ("fast", "rjieba") and user_dict is not None:
        raise InputError(f"--segmenter {kind} does not take a user dictionary")
    if kind == "fast":
        seg = FastJieba(seg)
    elif kind == "rjieba" and _has_rjieba():
        seg = RustJieba(seg)
    elif kind == "rjieba":  # rjieba is a dependency; without it (a broken install): jieba's words
        log.debug("rjieba is not installed: cutting words with jieba (pip install rjieba)")
    elif user_dict is None and os.environ.get("LTD_JIEBA", "") != "python" and _has_rjieba():
        seg = FastJieba(seg)
    _segmenters[(user_dict, kind)] = seg
    return seg


def _has_rjieba() -> bool:
    """Whether rjieba is installed (without importing it: ~0.3 s)."""
    import importlib.util

    return importlib.util.find_spec("rjieba") is not None


# --- jieba's dictionary on demand -------------------------------------------------------------
#: words a lazily started dictionary looks up in its sqlite file before it loads jieba's whole
#: dictionary (about 1 s) for good: some hundreds of sentences
LAZY_LOOKUPS = 20_000


def _dictionary_db() -> Path:
    """The sqlite copy of jieba's default dictionary, keyed by jieba's version and its
    dict.txt (size and time), under LTD_HOME/jieba."""
    import jieba

    from ltd_bert.common.cache import ltd_home

    st = os.stat(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"))
    key = hashlib.sha256(f"{jieba.__version__} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()
    return ltd_home() / "jieba" / f"dict-{key[:24]}.sqlite"


def start_lazily(tokenizer) -> bool:
    """Give jieba's default tokenizer a dictionary that answers from an sqlite file on
    demand (`LazyFreq`), so a process that segments a few sentences skips jieba's ~1 s load;
    the same words and counts, so the same segmentation. False (nothing changed) when there
    is no such file yet: it is written after this process loads the dictionary."""
    if tokenizer.initialized:
        return True
    db = _dictionary_db()
    if not db.is_file():
        _pending_db.append(db)
        return False
    try:
        freq = LazyFreq(tokenizer, db)
    except (sqlite3.Error, TypeError) as exc:
        log.debug("jieba dictionary %s unusable (%s): loading jieba's", db, exc)
        return False
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = freq, freq.total, True
    return True


_pending_db: list[Path] = []


def load_dictionary(tokenizer) -> None:
    """jieba's whole dictionary in `tokenizer` (instead of a `LazyFreq`), and its sqlite copy
    written if a lazy start found none."""
    if isinstance(tokenizer.FREQ, LazyFreq):
        tokenizer.initialized = False
    tokenizer.initialize()  # jieba's load (from its cache file), once
    while _pending_db:
        write_dictionary_db(tokenizer, _pending_db.pop())


def write_dictionary_db(tokenizer, db: Path) -> None:
    """Write jieba's loaded dictionary as an sqlite file (atomically; a failure is logged)."""
    import tempfile

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{db.name}.", suffix=".partial", dir=db.parent)
        os.close(fd)
        con = sqlite3.connect(tmp)
        try:
            con.execute("CREATE TABLE freq (w TEXT PRIMARY KEY, f INTEGER) WITHOUT ROWID")
            con.executemany("INSERT INTO freq VALUES (?, ?)", tokenizer.FREQ.items())
            con.execute("CREATE TABLE total (n INTEGER)")
            con.execute("INSERT INTO total VALUES (?)", (tokenizer.total,))
            con.commit()
        finally:
            con.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, db)
    except (OSError, sqlite3.Error) as exc:
        log.debug("jieba dictionary copy %s not written: %s", db, exc)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


class LazyFreq:
    """jieba's `FREQ` (word → count) answered from the sqlite copy, word by word (each
    answer kept); after LAZY_LOOKUPS words the tokenizer loads its whole dictionary and
    this object steps aside."""

    def __init__(self, tokenizer, db: Path):
        self.tokenizer = tokenizer
        self.con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        (self.total,) = self.con.execute("SELECT n FROM total").fetchone()
        self.seen: dict[str, int | None] = {}

    def _get(self, word: str) -> int | None:
        try:
            return self.seen[word]
        except KeyError:
            pass
        if len(self.seen) >= LAZY_LOOKUPS:
            load_dictionary(self.tokenizer)
            return self.tokenizer.FREQ.get(word)
        row = self.con.execute("SELECT f FROM freq WHERE w = ?", (word,)).fetchone()
        self.seen[word] = value = None if row is None else row[0]
        return value

    def __contains__(self, word: str) -> bool:
        return self._get(word) is not None

    def __getitem__(self, word: str) -> int:
        value = self._get(word)
        if value is None:
            raise KeyError(word)
        return value

    def get(self, word: str, default=None):
        value = self._get(word)
        return default if value is None else value


# jieba's own block structure (jieba.Tokenizer.cut, default mode): the text is split into
# runs of these characters, each cut on its own; anything else is yielded a character at a
# time, white space as is.
_JIEBA_BLOCK = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)", re.U)


_SYMBOL_IN_BLOCK = re.compile(r"[+#&\._%\-]")  # rjieba cuts these differently
_LATIN_IN_BLOCK = re.compile(r"[a-zA-Z0-9]")
_LATIN_RUN = re.compile(r"[a-zA-Z0-9]+")


class FastJieba:
    """jieba's default segmentation (dictionary, HMM on), word for word, ~3x faster.

    The text is split into jieba's own blocks; blocks of Chinese characters, Latin letters
    and digits take rjieba's route (the same dictionary and DAG in Rust; `_rust_route`),
    blocks with symbols (`+ # & . _ % -`) jieba's own route (rjieba keeps `24-25` or
    `nano-NaH` whole, jieba does not); block results are cached.

    rjieba's HMM decides near-ties differently (`常在吃`: the paths S·S·S and B·E·S differ by
    1.5e-7 in log probability; jieba picks the first, rjieba the second), so the HMM's part
    of each block is jieba's own (`_redo_hmm`): rjieba gives the route (`hmm=False`), whose
    runs of single characters are exactly the buffers jieba hands its HMM.
    Measured against `jieba.lcut` (`benchmarks/segmenters.py`, which counts the lines that
    differ): none of 100,000 zh_big.txt lines (1 did before the HMM was jieba's own).
    """

    CACHE = 500_000
    #: texts cut by jieba itself before rjieba is imported (~0.3 s, and its dictionary): a
    #: process that segments a few sentences (`ltd similarity A B`) does not pay for it
    JIEBA_FIRST = 2_000

    def __init__(self, jieba_tokenizer):
        self.jieba = jieba_tokenizer
        if not _has_rjieba():
            from ltd_bert.common.errors import InputError

            raise InputError("--segmenter fast needs rjieba: pip install rjieba")
        self._rust = None
        self._texts = 0
        self._cache: dict[str, list[str]] = {}
        self._hmm_cache: dict[str, list[str]] = {}

    def initialize(self) -> None:
        if not self.jieba.initialized:
            self.jieba.initialize()

    def _cut_block(self, block: str) -> list[str]:
        words = self._cache.get(block)
        if words is None:
            route = None if _SYMBOL_IN_BLOCK.search(block) else self._rust_route(block)
            if route is None:  # jieba's own route (`Tokenizer.__cut_DAG`)
                route = self._route(block)
            words = self._redo_hmm(route)
            if len(self._cache) < self.CACHE:
                self._cache[block] = words
        return words

    def _rust_route(self, block: str) -> list[str] | None:
        """jieba's route through a block of Chinese characters, Latin letters and digits
        from rjieba's `cut(block, hmm=False)`, which (as jieba's own `__cut_DAG_NO_HMM`)
        joins runs of single-character Latin or digit steps into one word: those are split
        back into their steps. None when a joined run is also a dictionary word (it may be
        one step): the caller takes jieba's route then."""
        route = self._rust(block, False)
        if not _LATIN_IN_BLOCK.search(block):
            return route
        out: list[str] = []
        for w in route:
            if len(w) > 1 and _LATIN_RUN.fullmatch(w):
                if self.jieba.FREQ.get(w):
                    return None
                out.extend(w)
            else:
                out.append(w)
        return out

    def _route(self, block: str) -> list[str]:
        """jieba's dictionary route through `block` (its DAG and `calc`), one word per step."""
        dag = self.jieba.get_DAG(block)
        route: dict[int, tuple[float, int]] = {}
        self.jieba.calc(block, dag, route)
        out, x = [], 0
        while x < len(block):
            y = route[x][1] + 1
            out.append(block[x:y])
            x = y
        return out

    def _redo_hmm(self, route: list[str]) -> list[str]:
        """jieba's words from rjieba's route (`cut(block, False)`: the dictionary's best path,
        one word per step), as jieba's `Tokenizer.__cut_DAG` makes them: every maximal run
        of single-character steps is a buffer, yielded as is (one character), character by
        character (a dictionary word) or as its HMM cuts it (`finalseg.cut`)."""
        out: list[str] = []
        run: list[str] = []
        for w in route:
            if len(w) == 1:
                run.append(w)
                continue
            if run:
                out.extend(self._hmm_buffer(run))
                run = []
            out.append(w)
        if run:
            out.extend(self._hmm_buffer(run))
        return out

    def _hmm_buffer(self, run: list[str]) -> list[str]:
        if len(run) == 1 and len(run[0]) == 1:
            return run
        buf = "".join(run)
        words = self._hmm_cache.get(buf)
        if words is None:
            if self.jieba.FREQ.get(buf):
                words = list(buf)
            else:
                words = hmm_cut(buf)
            if len(self._hmm_cache) < self.CACHE:
                self._hmm_cache[buf] = words
        return words

    def lcut(self, text: str, HMM: bool = True) -> list[str]:  # noqa: N803 (jieba's name)
        if not HMM:
            return self.jieba.lcut(text, HMM=False)
        if self._rust is None:
            self._texts += 1
            if self._texts <= self.JIEBA_FIRST:
                return self.jieba.lcut(text, HMM=True)
            import rjieba

            self._rust = rjieba.cut
        out: list[str] = []
        for i, part in enumerate(_JIEBA_BLOCK.split(text)):
            if not part:
                continue
            if i % 2:  # a block
                out.extend(self._cut_block(part))
            else:  # jieba: white space runs split per character, others char by char
                out.extend(part)
        return out


class RustJieba(FastJieba):
    """rjieba's own cut (dictionary and HMM in Rust), one call per text.

    Not jieba's words word for word, in three ways: rjieba keeps a run joined by `+ # & . _
    % -` whole (`24-25`, `K-means`, `node.js`: jieba splits them at the symbol, which then
    weighs nothing), its HMM breaks near-ties differently (`常在吃`, see `FastJieba`), and it
    joins characters past jieba's Han range (`𬸚𬸦`). `benchmarks/segmenters.py
    --compare-only --segmenter rjieba` counts the lines cut differently (about 1 in 100 of
    zh_big.txt, nearly all the joined runs). In exchange no Python runs per block or per
    HMM buffer, and jieba's dictionary is never loaded (`benchmarks/segmenters.py` without
    `--compare-only` times jieba, FastJieba and this)."""

    JIEBA_FIRST = 0  # every text the same way, however many the process cuts

    def lcut(self, text: str, HMM: bool = True) -> list[str]:  # noqa: N803 (jieba's name)
        if not HMM:
            return super().lcut(text, HMM)
        if self._rust is None:
            import rjieba

            self._rust = rjieba.cut
        return self._rust(text, True)


_HMM_HAN = re.compile("([\u4e00-\u9fd5]+)")
_HMM_SKIP = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")
_HMM_TABLES: tuple | None = None


def hmm_cut(buf: str) -> list[str]:
    """`list(jieba.finalseg.cut(buf))`, word for word, 2.3x faster (54,114 buffers cut from
    corpus lines, docs/research-record-2026.md): the same Viterbi over
    the same probabilities, its sums made in the same order and ties broken the same way
    (on equal scores jieba's `max` over (score, state) takes the later state letter), with
    back-pointers instead of a copied path per state and step."""
    out: list[str] = []
    for blk in _HMM_HAN.split(buf):
        if not blk:
            continue
        if _HMM_HAN.match(blk):
            out.extend(_hmm_words(blk))
        else:
            out.extend(x for x in _HMM_SKIP.split(blk) if x)
    return out


def _hmm_words(text: str) -> list[str]:
    """jieba's `finalseg.__cut` of a run of Chinese characters (its force-split words
    included)."""
    global _HMM_TABLES
    from jieba import finalseg

    if _HMM_TABLES is None:
        mf, tp, ep = finalseg.MIN_FLOAT, finalseg.trans_P, finalseg.emit_P
        sp = finalseg.start_P
        trans = {(a, b): tp[a].get(b, mf) for a in "BMES" for b in "BMES"}
        _HMM_TABLES = (mf, sp, trans, ep["B"], ep["M"], ep["E"], ep["S"])
    mf, sp, tr, eb, em, ee, es = _HMM_TABLES
    c = text[0]
    b, m, e, s = (
        sp["B"] + eb.get(c, mf),
        sp["M"] + em.get(c, mf),
        sp["E"] + ee.get(c, mf),
        sp["S"] + es.get(c, mf),
    )
    eb_b, sb, mm, bm, ss, es_, be, me = (
        tr["E", "B"], tr["S", "B"], tr["M", "M"], tr["B", "M"],
        tr["S", "S"], tr["E", "S"], tr["B", "E"], tr["M", "E"],
    )  # fmt: skip
    back: list[tuple[str, str, str, str]] = []  # per step: the previous state of B, M, E, S
    for c in text[1:]:
        pb, pm, pe, ps = eb.get(c, mf), em.get(c, mf), ee.get(c, mf), es.get(c, mf)
        # B from E or S; M from M or B; S from S or E; E from B or M (jieba's PrevStatus)
        x, y = e + eb_b + pb, s + sb + pb
        nb, fb = (y, "S") if y >= x else (x, "E")
        x, y = m + mm + pm, b + bm + pm
        nm, fm = (x, "M") if x >= y else (y, "B")
        x, y = s + ss + ps, e + es_ + ps
        ns, fs = (x, "S") if x >= y else (y, "E")
        x, y = b + be + pe, m + me + pe
        ne, fe = (y, "M") if y >= x else (x, "B")
        b, m, e, s = nb, nm, ne, ns
        back.append((fb, fm, fe, fs))
    state = "S" if s >= e else "E"
    tags = [state]
    slot = {"B": 0, "M": 1, "E": 2, "S": 3}
    for step in reversed(back):
        state = step[slot[state]]
        tags.append(state)
    tags.reverse()
    words, begin, nexti = [], 0, 0
    for i, tag in enumerate(tags):
        if tag == "B":
            begin = i
        elif tag == "E":
            words.append(text[begin : i + 1])
            nexti = i + 1
        elif tag == "S":
            words.append(text[i])
            nexti = i + 1
    if nexti < len(text):
        words.append(text[nexti:])
    force = finalseg.Force_Split_Words
    if force:
        words = [x for w in words for x in ((w,) if w not in force else w)]
    return words


def segment(text: str, user_dict: str | None = None, kind: str = "jieba") -> list[str]:
    """jieba words of an (already cleaned) text, HMM on, covering every character."""
    return get_segmenter(user_dict, kind).lcut(text, HMM=True)
