"""The fidelity suite: how close a student stays to its teacher on kinds of text that no
model trained on, without labels.

A suite is a folder of `<kind>.txt` files, one text per line (the package's own is
`ltd_bert/suites/suite/`, made by `scripts/make_suite.py` from held-back corpus lines: length
classes from 5 to 4,000 characters, questions, statutes, classical verse). For each kind, it
reports:

- `fidelity`: the mean cosine between the student's centred prediction and the teacher's
  vector minus the same training mean (1 = the student reproduces the teacher);
- `pairs_centred` and `pairs_default`: the neighbour-pair agreement (calibrate.py), the
  Spearman × 100 between the student's and the teacher's cosines over pairs of texts that
  are near neighbours for the teacher, with the plain centred vectors and with the model's
  default similarity vectors (its whitening and share of the mean): the label-free stand-in
  for a similarity benchmark of that kind of text.

And one row across kinds (`cross_pairs`), when the suite has both: documents (kinds of
`DOC_CHARS` characters or more on average) each paired with one of its near-neighbour
sentences from the other kinds, the stand-in for a search of long documents by short text,
where the two sides' vectors are not alike in length and the share of the mean weighs most.

The teacher's vectors are computed once per kind with `teacher_embed` (resumable: long
documents cost the teacher seconds each) and cached under `LTD_HOME/suite/`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.student.calibrate import NEIGHBOURS, spread
from ltd_bert.suites import CALIB, SUITE

log = logging.getLogger(__name__)

#: the suite shipped with the package
DEFAULT_SUITE = SUITE
#: the calibration mix shipped with the package: the same kinds from other held-back lines
DEFAULT_CALIB = CALIB


#: kinds of at least this many characters on average are documents (`cross_pairs`)
DOC_CHARS = 200
#: the row across kinds
CROSS = "documents × sentences"


@dataclass
class KindResult:
    """A kind's row; the row across kinds (`CROSS`) has texts = its documents, and no mean
    length or fidelity of its own."""

    kind: str
    texts: int
    mean_chars: float | None
    fidelity: float | None
    pairs_centred: float
    pairs_default: float
    #: the student's centred cosines against the teacher's centred ones (like for like: a
    #: student equal to the teacher scores 100 here, while `pairs_centred` compares with the
    #: teacher's own vectors, mean included, where the teacher's centred vectors score 47-86)
    pairs_matched: float | None = None
    #: the resampling spread of each pair column: the standard deviation of its Spearman over
    #: resamplings of the pairs with replacement (`student.calibrate.spread`)
    spread: dict[str, float] | None = None


@dataclass
class KindVectors:
    """What `run_suite` measured a kind on, kept for the row across kinds."""

    pred: np.ndarray  # the student's centred vectors
    targets: np.ndarray  # the teacher's
    mean_chars: float
    chars: np.ndarray  # each text's characters


def suite_files(folder: str | Path | None) -> list[Path]:
    """The `<kind>.txt` files of a suite folder, by name."""
    folder = Path(folder) if folder else DEFAULT_SUITE
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no suite folder (give a folder of <kind>.txt files, one text per "
            "line; scripts/make_suite.py makes the package's suites/suite and suites/calib)"
        )
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(f"{folder}: no <kind>.txt files")
    return files


def cache_dir(student, what: str = "suite") -> Path:
    """Where the teacher vectors of a model's suite (or of the shipped replay set, `what` =
    "replay") live: one folder per teacher setting."""
    from ltd_bert.teacher.builtin import ltd_home

    m = student.meta
    key = "|".join(
        str(m.get(k))
        for k in ("teacher", "teacher_config", "pooling", "layer", "prefix", "eps", "idf_sha256")
    )
    return ltd_home() / what / hashlib.sha256(key.encode()).hexdigest()[:16]


def _usable(path: Path, texts: list[str], student, first: bool = False) -> bool:
    """The cache file holds the teacher vectors of exactly these texts (`first`: these texts
    first, maybe more after them), made with the model's teacher settings and long texts
    pooled over windows."""
    from ltd_bert.teacher.store import TARGET_KEYS, TeacherFile, same_setting, setting

    if not path.is_file():
        return False
    try:
        with TeacherFile(path) as tf:
            ok = all(
                same_setting(k, setting(tf.settings, k), setting(student.meta, k))
                for k in TARGET_KEYS
            )
            n = len(texts)
            ok = ok and setting(tf.settings, "long") == "windows"
            ok = ok and (len(tf) >= n if first else len(tf) == n)
            return ok and tf.read(0, n)[0] == texts
    except StoreError:
        return False


def model_pooling(student):
    """The teacher pooling a model was trained on, long texts over windows."""
    from ltd_bert.teacher.model import PoolingSettings

    m = student.meta
    return PoolingSettings(
        m.get("pooling", "idf"), int(m.get("layer", -1)), m.get("prefix", ""), 256, "windows"
    )


@functools.lru_cache(maxsize=1)
def load_teacher(name: str):
    """The teacher, loaded once for all the kinds a command embeds."""
    from ltd_bert.teacher.model import Teacher

    return Teacher(name)


def teacher_vectors(
    student,
    kind_file: Path,
    texts: list[str],
    cache: Path,
    teacher_name: str | None,
    progress,
    first: int | None = None,
) -> np.ndarray:
    """The teacher's vectors of `texts`: the cleaned, non-empty lines of `kind_file`, or with
    `first`, the first that many of them (read from the whole kind's cache file when there is
    one, else embedded into a file of their own)."""
    from ltd_bert.teacher.embed import teacher_embed_cached
    from ltd_bert.teacher.store import TeacherFile

    digest = hashlib.sha256(kind_file.read_bytes()).hexdigest()[:12]
    out = cache / f"{kind_file.stem}-{digest}.h5"  # by content: kinds of other suites differ
    lines = None
    if first is not None and len(texts) == first:  # else the kind has no more texts
        if _usable(out, texts, student, first=True):
            with TeacherFile(out) as tf:
                return tf.read(0, len(texts))[1]
        out = out.with_name(f"{out.stem}-first{len(texts)}.h5")
        lines = input_lines(kind_file, len(texts))
    if not _usable(out, texts, student):
        cache.mkdir(parents=True, exist_ok=True)
        teacher = load_teacher(teacher_name or student.meta["teacher"])
        settings = model_pooling(student)
        if progress:
            progress(f"teacher: {kind_file.stem} ({len(texts)} texts)")
        # a complete file here holds other texts: made again; a `.partial` resumes, unless it
        # was made with other settings: then made again
        teacher_embed_cached(
            [str(kind_file)],
            out,
            teacher,
            student.weighter,
            settings,
            limit=lines,
            overwrite=out.exists(),
        )
    with TeacherFile(out) as tf:
        return tf.read(0, len(tf))[1]


def measure(student, pred: np.ndarray, targets: np.ndarray, chars, neighbours: int = NEIGHBOURS):
    """(fidelity, centred, default and matched pair agreement, their spreads) of one kind
    from the student's centred vectors `pred` of its texts (of `chars` characters each) and
    the teacher's `targets`."""
    from ltd_bert.common.stats import cosines
    from ltd_bert.student.calibrate import neighbour_pairs

    fid = float(cosines(pred, targets - student.mean).mean())
    pairs = neighbour_pairs(targets, neighbours)
    return (fid, *pair_scores(student, pred, targets, pairs, chars))


def pair_columns(student, pred: np.ndarray, targets: np.ndarray, pairs, chars) -> dict:
    """`{column: (student cosines, teacher cosines)}` of `pairs`: the centred and the default
    vectors (`student.similarity` of `pred`, texts of `chars` characters) against the
    teacher's vectors, and the centred ones against the teacher's centred vectors
    (`matched`)."""
    from ltd_bert.common.stats import cosines
    from ltd_bert.student.calibrate import pair_cosines

    i, j = pairs
    mean = student.mean
    raw, centred = cosines(targets[i], targets[j]), cosines(targets[i] - mean, targets[j] - mean)
    sim = student.similarity(pred, chars)
    return {
        "centred": (pair_cosines(pred, mean, 0.0, pairs), raw),
        "default": (cosines(sim[i], sim[j]), raw),
        "matched": (pair_cosines(pred, mean, 0.0, pairs), centred),
    }


def pair_scores(student, pred: np.ndarray, targets: np.ndarray, pairs, chars) -> tuple:
    """(centred, default, matched) pair agreement of `pairs` (`pair_columns`), and their
    resampling spreads."""
    from ltd_bert.common.stats import spearman

    cols = pair_columns(student, pred, targets, pairs, chars)
    scores = tuple(100 * spearman(a, b) for a, b in cols.values())
    return (*scores, {k: spread(a, b) for k, (a, b) in cols.items()})


def cross_pairs(
    docs: np.ndarray, sents: np.ndarray, neighbours: int = NEIGHBOURS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each document (a row of the teacher's `docs`) paired with one of its `neighbours`
    nearest sentences (rows of `sents`) by the teacher's cosine, both centred on their joint
    mean, drawn at random (seeded): (i, j) indices into `[docs; sents]`."""
    from ltd_bert.student.calibrate import pick_near

    both = np.concatenate([docs, sents]).astype(np.float32)
    c = both - both.mean(0)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    k = min(neighbours, len(sents))
    pick = np.random.default_rng(seed).integers(0, k, len(docs))
    return np.arange(len(docs)), len(docs) + pick_near(c[: len(docs)] @ c[len(docs) :].T, k, pick)


def cross_row(student, vectors: dict[str, KindVectors]) -> KindResult | None:
    """The row across kinds (`CROSS`): documents against sentences of the other kinds, or
    None when the suite lacks either."""
    docs = [v for v in vectors.values() if v.mean_chars >= DOC_CHARS]
    sents = [v for v in vectors.values() if v.mean_chars < DOC_CHARS]
    if not docs or not sents:
        return None
    pred = np.concatenate([v.pred for v in docs + sents])
    targets = np.concatenate([v.targets for v in docs + sents])
    chars = np.concatenate([v.chars for v in docs + sents])
    d = sum(len(v.targets) for v in docs)
    pairs = cross_pairs(targets[:d], targets[d:])
    return KindResult(CROSS, d, None, None, *pair_scores(student, pred, targets, pairs, chars))


def load_kind(path: Path, first: int | None = None) -> list[str]:
    """The texts of a kind (its cleaned, non-empty lines), or only the first `first`."""
    from ltd_bert.text.clean import clean_text

    texts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        t = clean_text(line)
        if t:
            texts.append(t)
            if first is not None and len(texts) >= first:
                break
        elif line.strip():
            raise InputError(f"{path}:{n}: a line with nothing left after cleaning")
    if len(texts) <= NEIGHBOURS:
        raise InputError(f"{path}: {len(texts)} texts; a kind needs more than {NEIGHBOURS}")
    return texts


def input_lines(path: Path, texts: int) -> int:
    """How many lines of a kind's file hold its first `texts` texts."""
    from ltd_bert.text.clean import clean_text

    found = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        found += bool(clean_text(line))
        if found >= texts:
            return n
    return n


def run_suite(
    student,
    suite: str | Path | None = None,
    kinds: Sequence[str] | None = None,
    cache: str | Path | None = None,
    teacher: str | None = None,
    progress: Callable[[str], None] | None = None,
    vectors: dict[str, KindVectors] | None = None,
    texts_per_kind: int | None = None,
) -> list[KindResult]:
    """The suite's measures for one model, a row per kind (in file-name order); `vectors`
    (a dict) gets what each kind was measured on (`cross_row`); `texts_per_kind` measures
    only each kind's first texts (quicker on a cold cache, and a rougher measure)."""
    files = suite_files(suite)
    if kinds:
        names = {f.stem: f for f in files}
        missing = [k for k in kinds if k not in names]
        if missing:
            raise InputError(f"--kind {missing[0]!r}: not in the suite ({', '.join(names)})")
        files = [names[k] for k in kinds]
    cache = Path(cache) if cache else cache_dir(student)
    rows = []
    for f in files:
        texts = load_kind(f, texts_per_kind)
        targets = teacher_vectors(student, f, texts, cache, teacher, progress, texts_per_kind)
        pred = student.encode(texts, space="centred")
        lengths = student.read_chars(texts)
        fid, centred, default, matched, spreads = measure(student, pred, targets, lengths)
        chars = float(np.mean([len(t) for t in texts]))
        rows.append(KindResult(f.stem, len(texts), chars, fid, centred, default, matched, spreads))
        if vectors is not None:
            vectors[f.stem] = KindVectors(pred, targets, chars, lengths)
        if progress:
            progress(f"{f.stem}: fidelity {fid:.3f}")
    return rows


def table(rows: Sequence[KindResult], cross: KindResult | None = None) -> str:
    """The suite as a Markdown table, with the mean over kinds, then the row across kinds;
    each pair figure ± its resampling spread (`spread`)."""
    lines = [
        "| kind | texts | mean chars | fidelity | pairs, centred | pairs, default "
        "| pairs, matched |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.texts} | {r.mean_chars:.0f} | {r.fidelity:.3f} | "
            f"{_num(r.pairs_centred, r, 'centred')} | {_num(r.pairs_default, r, 'default')} | "
            f"{_num(r.pairs_matched, r, 'matched')} |"
        )
    if rows:
        mean = lambda k: float(  # noqa: E731
            np.mean([np.nan if getattr(r, k) is None else getattr(r, k) for r in rows])
        )
        lines.append(
            f"| mean of kinds | | | {mean('fidelity'):.3f} | {mean('pairs_centred'):.1f} | "
            f"{mean('pairs_default'):.1f} | {_num(mean('pairs_matched'))} |"
        )
    if cross:
        lines.append(
            f"| {cross.kind} (each document with a near sentence) | {cross.texts} | | | "
            f"{_num(cross.pairs_centred, cross, 'centred')} | "
            f"{_num(cross.pairs_default, cross, 'default')} | "
            f"{_num(cross.pairs_matched, cross, 'matched')} |"
        )
    return "\n".join(lines)


def _num(x: float | None, row: KindResult | None = None, column: str = "") -> str:
    """A pair column's figure, ± its resampling spread when the row has one."""
    if x is None or np.isnan(x):
        return "–"
    sd = (row.spread or {}).get(column) if row is not None else None
    return f"{x:.1f} ± {sd:.1f}" if sd is not None else f"{x:.1f}"


def as_dicts(rows: Sequence[KindResult]) -> list[dict]:
    return [asdict(r) for r in rows]


def kind_groups(
    student,
    files: Sequence[Path],
    cache=None,
    teacher: str | None = None,
    progress=None,
    texts_per_kind: int | None = None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """`{kind: (the student's centred vectors, the teacher's vectors)}` of suite files and
    `{kind: the texts' lengths in characters}`: what `calibrate_mix` chooses on."""
    cache = Path(cache) if cache else cache_dir(student)
    groups, chars = {}, {}
    for f in files:
        texts = load_kind(f, texts_per_kind)
        targets = teacher_vectors(student, f, texts, cache, teacher, progress, texts_per_kind)
        groups[f.stem] = (student.encode(texts, space="centred"), targets)
        chars[f.stem] = student.read_chars(texts)
    return groups, chars


def calibrate_on(
    model_dir: str | Path,
    suite: str | Path,
    cache: str | Path | None = None,
    teacher: str | None = None,
    progress: Callable[[str], None] | None = None,
    texts_per_kind: int | None = None,
):
    """Choose the model's similarity map on the kinds of `suite` (a mix held apart from the
    suite that reports: the package's is `ltd_bert/suites/calib/`) with `calibrate_mix`, and
    write it into the model folder; `texts_per_kind` as in `run_suite`. Returns the
    `MixCalibration`."""
    from ltd_bert.student.calibrate import calibrate_mix
    from ltd_bert.student.model import Student
    from ltd_bert.tasks.evaluate import write_calibration

    student = Student.load(model_dir)
    if student.meta.get("quantized"):
        raise InputError(f"{model_dir}: calibrate the float32 model, then quantize it again")
    groups, chars = kind_groups(
        student, suite_files(suite), cache, teacher, progress, texts_per_kind
    )
    cal = calibrate_mix(groups, student.mean, chars=chars)
    write_calibration(Path(model_dir), student, cal)
    return cal
