"""Word IDF: build it from a corpus (streaming, several processes), save it, load it.

Formula (stored in every file this module writes):
    idf(w) = ln((N + 1) / (df(w) + 1))
with N the number of non-empty lines (one line = one document) and df(w) the number of
lines that contain w at least once. Words are jieba words of the cleaned line, lower-cased;
words made only of punctuation or spaces are not counted. A word never seen gets the
median IDF of the table (what jieba's own keyword extractor does).

`load_idf("jieba")` returns jieba's own general table (`jieba/analyse/idf.txt`).
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import math
import multiprocessing as mp
import os
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ltd_bert.common.errors import IdfError, InputError
from ltd_bert.common.textio import LineReader, check_output_dir, output_tempfile
from ltd_bert.common.version import __version__
from ltd_bert.text.clean import clean_text, is_content_word
from ltd_bert.text.segment import get_segmenter

log = logging.getLogger(__name__)

FORMULA = "idf(w) = ln((N + 1) / (df(w) + 1))"
MAGIC = "# ltd-bert idf v1"
JIEBA = "jieba"


@dataclass
class IdfTable:
    """Word → IDF, with the default for unseen words and where the table came from."""

    idf: dict[str, float]
    default: float
    source: str = ""
    sha256: str = ""
    n_docs: int | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def get(self, word: str) -> float:
        return self.idf.get(word.lower(), self.default)

    def __len__(self) -> int:
        return len(self.idf)


def recorded_source(source: str) -> str:
    """The IDF path a teacher file records: absolute, so `ltd train` finds it from any folder."""
    return source if source in ("", JIEBA) else os.path.abspath(source)


def find_recorded_idf(source: str, teacher_file: str | Path) -> str:
    """The IDF file a teacher file names: as recorded, else (a relative path recorded by an
    older version) beside the teacher file."""
    if source in ("", JIEBA) or Path(source).is_file() or Path(source).is_absolute():
        return source
    beside = Path(teacher_file).resolve().parent / source
    return str(beside) if beside.is_file() else source


def idf_file_sha256(path: str | Path) -> str | None:
    """The sha256 `load_idf` would record, without parsing the table (None if missing)."""
    p = jieba_idf_path() if str(path) == JIEBA else Path(path)
    if not p.is_file():
        return None
    data = p.read_bytes()
    if p.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    return hashlib.sha256(data).hexdigest()


def idf_value(n_docs: int, df: int) -> float:
    return math.log((n_docs + 1) / (df + 1))


def jieba_idf_path() -> Path:
    import jieba.analyse

    return Path(jieba.analyse.__file__).parent / "idf.txt"


def load_idf(path: str | Path) -> IdfTable:
    """Load an IDF file written by `build_idf`, jieba's `word idf` format, or `"jieba"`."""
    if str(path) == JIEBA:
        table = load_idf(jieba_idf_path())
        table.source = JIEBA
        return table
    p = Path(path)
    if not p.is_file():
        raise IdfError(f"{p}: no such IDF file (build one with `ltd idf build` or use jieba)")
    data = p.read_bytes()
    if len(data) < CACHE_MIN_BYTES:
        table = _parse_idf(p, data)
    else:
        cache = _cache_path(data)
        table = _read_cache(cache)
        if table is None:
            table = _parse_idf(p, data)
            _write_cache(cache, table)
    table.source = str(p)
    return table


#: bump when the cached form of a table changes
CACHE_VERSION = 1
#: files this large are parsed once and then read from a cache under LTD_HOME/idf
CACHE_MIN_BYTES = 256 * 1024


def _cache_path(data: bytes) -> Path:
    """Where the parsed table of a file with these bytes is cached: keyed by their sha256, the
    cache format and marshal's, so another file, version or Python never reads it."""
    from ltd_bert.common.cache import ltd_home

    key = hashlib.sha256(data).hexdigest()[:32]
    return ltd_home() / "idf" / f"{key}-v{CACHE_VERSION}-m{marshal.version}.marshal"


def _read_cache(path: Path) -> IdfTable | None:
    """The table cached at `path` (about 4x faster than parsing a 550,000-word table), or
    None when there is none or it is unreadable."""
    try:
        idf, default, sha, n_docs, meta = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return IdfTable(idf, default, sha256=sha, n_docs=n_docs, meta=meta)


def _write_cache(path: Path, table: IdfTable) -> None:
    from ltd_bert.common.cache import write_cache_file

    data = (table.idf, table.default, table.sha256, table.n_docs, table.meta)
    write_cache_file(path, marshal.dumps(data))


def _parse_idf(p: Path, data: bytes) -> IdfTable:
    if p.suffix == ".gz":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise IdfError(f"{p}: not a readable gzip file") from None
    sha = hashlib.sha256(data).hexdigest()  # of the content, so a gzipped copy keeps it
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IdfError(f"{p}: not a UTF-8 text file") from None
    meta: dict[str, str] = {}
    idf: dict[str, float] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("# "):  # headers; a word never contains a space
            key, sep, value = line[1:].partition(":")
            if sep:
                meta[key.strip()] = value.strip()
            continue
        parts = line.split("\t") if "\t" in line else line.rsplit(" ", 1)
        if len(parts) < 2 or not parts[0]:
            raise IdfError(f"{p}:{lineno}: expected `word<TAB>idf`, got {line[:60]!r}")
        try:
            value = float(parts[1])
        except ValueError:
            raise IdfError(f"{p}:{lineno}: IDF value {parts[1][:30]!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise IdfError(f"{p}:{lineno}: IDF value {value} must be finite and >= 0")
        word = parts[0].lower()
        idf.setdefault(word, value)
    if not idf:
        raise IdfError(f"{p}: no IDF entries")
    if "unseen" in meta:
        try:
            default = float(meta["unseen"].split("=")[-1])
        except ValueError:
            raise IdfError(f"{p}: bad `# unseen:` header {meta['unseen']!r}") from None
    else:
        default = statistics.median(idf.values())
    n_docs = int(meta["documents"]) if meta.get("documents", "").isdigit() else None
    return IdfTable(idf, default, source=str(p), sha256=sha, n_docs=n_docs, meta=meta)


# --- building ---------------------------------------------------------------------------

_CHUNK = 2000


def _count_lines(
    lines: Iterable[str], user_dict: str | None, segmenter: str = "jieba"
) -> tuple[Counter, int]:
    seg = get_segmenter(user_dict, segmenter)
    df: Counter = Counter()
    docs = 0
    for line in lines:
        text = clean_text(line)
        if not text:
            continue
        docs += 1
        df.update({w.lower() for w in seg.lcut(text, HMM=True) if is_content_word(w)})
    return df, docs


def _worker(tasks: mp.Queue, results: mp.Queue, user_dict: str | None, segmenter: str) -> None:
    # The parent stops workers (terminate) when it fails or is interrupted: die quietly then,
    # not through the inherited handler that turns SIGTERM into a KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    total: Counter = Counter()
    docs = 0
    while True:
        chunk = tasks.get()
        if chunk is None:
            break
        df, n = _count_lines(chunk, user_dict, segmenter)
        total.update(df)
        docs += n
    results.put((total, docs))


@dataclass
class IdfStats:
    lines: int
    documents: int
    words: int
    dropped_rare: int
    bad_lines: int
    seconds: float
    bytes: int


def count_document_frequency(
    reader: LineReader,
    workers: int = 1,
    user_dict: str | None = None,
    progress=None,
    segmenter: str = "jieba",
) -> tuple[Counter, int]:
    """Document frequency of every word over the reader's lines.

    With `workers > 1`, chunks of lines go through a bounded queue to worker processes that
    each keep their own counts and send them back once at the end, so memory stays flat and
    the result is exactly the single-process result.
    """

    def chunks():
        buf: list[str] = []
        for _, _, text in reader:
            buf.append(text)
            if len(buf) >= _CHUNK:
                yield buf
                buf = []
                if progress is not None:
                    progress(reader)
        if buf:
            yield buf
        if progress is not None:
            progress(reader)

    if workers <= 1:
        df: Counter = Counter()
        docs = 0
        for chunk in chunks():
            d, n = _count_lines(chunk, user_dict, segmenter)
            df.update(d)
            docs += n
        return df, docs

    get_segmenter(user_dict, segmenter, load=True)  # loaded once; forked workers share it
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
    tasks = ctx.Queue(maxsize=workers * 4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(tasks, results, user_dict, segmenter))
        for _ in range(workers)
    ]
    for p in procs:
        p.daemon = True
        p.start()
    finished = False
    try:
        for chunk in chunks():
            tasks.put(chunk)
        for _ in procs:
            tasks.put(None)
        df = Counter()
        docs = 0
        for _ in procs:
            d, n = results.get()
            df.update(d)
            docs += n
        for p in procs:
            p.join()
        finished = True
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        if not finished:  # chunks still queued will never be read: do not wait at exit to
            tasks.cancel_join_thread()  # flush them into a pipe nobody empties (a hang)
            results.cancel_join_thread()
    return df, docs


def build_idf(
    paths: list[str],
    output: str | Path,
    workers: int | None = None,
    min_df: int = 1,
    user_dict: str | None = None,
    errors: str = "strict",
    progress=None,
    segmenter: str = "jieba",
) -> IdfStats:
    """Count document frequencies over `paths` and write the IDF file atomically."""
    if min_df < 1:
        raise InputError("--min-df must be at least 1")
    if user_dict is not None and not Path(user_dict).is_file():
        raise InputError(f"{user_dict}: no such user dictionary")
    workers = workers or os.cpu_count() or 1
    out = Path(output)
    check_output_dir(out)
    reader = LineReader(paths, errors=errors)
    t0 = time.perf_counter()
    df, docs = count_document_frequency(reader, workers, user_dict, progress, segmenter)
    if docs == 0:
        raise InputError(f"{', '.join(paths)}: no non-empty lines, cannot compute IDF")
    kept = [(w, c) for w, c in df.items() if c >= min_df]
    kept.sort(key=lambda wc: (-wc[1], wc[0]))
    values = [idf_value(docs, c) for _, c in kept]
    unseen = statistics.median(values) if values else idf_value(docs, 0)
    header = [
        MAGIC,
        f"# tool_version: {__version__}",
        f"# documents: {docs}",
        f"# formula: {FORMULA}",
        f"# unseen: median idf = {unseen:.7f}",
        f"# min_df: {min_df}",
        "# words: jieba (HMM on) words of cleaned lines, lower-cased; punctuation-only words"
        " not counted",
        f"# user_dict: {user_dict or '-'}",
        f"# segmenter: {segmenter}",
        f"# corpus: {' '.join(str(Path(p).resolve()) if p != '-' else '-' for p in paths)}",
        "# columns: word<TAB>idf<TAB>df",
    ]
    body = "".join(f"{w}\t{v:.7f}\t{c}\n" for (w, c), v in zip(kept, values, strict=True))
    atomic_write_text(out, "\n".join(header) + "\n" + body)
    return IdfStats(
        lines=reader.lines_read,
        documents=docs,
        words=len(kept),
        dropped_rare=len(df) - len(kept),
        bad_lines=reader.bad_lines,
        seconds=time.perf_counter() - t0,
        bytes=reader.bytes_read,
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename into place."""
    path = Path(path)
    fd, tmp = output_tempfile(path)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
