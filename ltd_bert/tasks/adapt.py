"""Adapt a trained student to a user's own unlabeled text (`ltd adapt`).

1. The teacher embeds the in-domain text once (resumable, like `teacher-embed`), with the
   model's own teacher settings and character weights; domain teacher files made with those
   settings (`teacher-embed`, say under torchrun elsewhere) are used as they are.
2. General rows are replayed beside it, so that nothing else is forgotten: teacher files
   as they are, or text files embedded the same way (at most `replay_ratio` × the domain's
   rows of each); without either, the general set shipped with the package (`replay.py`,
   its teacher vectors cached under LTD_HOME). With `replay_targets="own"` replayed text
   has the model's own vectors before adapting as targets instead, and no teacher time.
   Documents of a shipped set are replayed too, as the windows the model reads, with its
   own vectors as targets.
3. Training continues from the model (`--init-from`), keeping its mean, for `epochs` over
   the domain and replay rows shuffled together; the domain's last rows are held out.
   With `new_words`, the domain's most frequent words that the model's word path lacks join
   it first, each fitted to the model's errors on the domain (with `epochs` 0, that is all:
   nothing the model knew changes).
4. The similarity map is chosen again on a mix of kinds (`calibrate_mix`): the general
   calibration kinds plus the domain's held-out rows, so neither kind falls under its
   plain centred vectors.
5. Fidelity before and after, on the domain's held-out rows and on the general suite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from ltd_bert.common.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class AdaptReport:
    domain_rows: int
    replay_rows: int
    held_out: int
    words_added: int
    train: dict
    calibration: dict
    #: {"before"|"after": {"domain": fidelity, "suite": [KindResult...], "pairs": {...}}}
    scores: dict = field(default_factory=dict)
    #: windows of the shipped documents replayed with the model's own vectors
    replay_windows: int = 0


#: adapt's defaults, chosen on LCQMC's validation questions (docs/quality.md): the words of
#: the domain added to a word path (None: this many when the model has one), and the
#: neighbours the relational term's groups are drawn from
NEW_WORDS = 4000
PAIR_K = 48

#: the targets replayed text can have (`adapt`'s `replay_targets`)
REPLAY_TARGETS = ("teacher", "own")
#: the rows the relational term's groups are anchored on (`adapt`'s `pair_anchors`)
PAIR_ANCHORS = ("all", "domain")


def embed_text(
    inputs: Sequence[str], out: Path, student, teacher, limit: int | None, progress
) -> int:
    """Teacher vectors of text files into `out` (resumable); the number of rows."""
    from ltd_bert.tasks.suite import model_pooling
    from ltd_bert.teacher.embed import teacher_embed

    def step(lines, stats):
        if progress:
            progress(lines + stats.resumed_from)

    stats = teacher_embed(
        list(inputs),
        out,
        teacher,
        student.weighter,
        model_pooling(student),
        limit=limit,
        progress=step,
    )
    return stats.rows


def is_teacher_file(path: str) -> bool:
    """A teacher file (HDF5) rather than text, by its name."""
    return str(path).endswith((".h5", ".hdf5"))


def domain_fidelity(student, sents, weights, vecs) -> float:
    """Mean centred cosine of the student on rows of a teacher file."""
    from ltd_bert.common.stats import cosines

    pred = student.encode_prepared(sents, weights)
    return float(cosines(pred, vecs - student.mean).mean())


def domain_pairs(student, sents, weights, vecs) -> dict[str, float]:
    """The suite's pair agreement (`tasks.suite.pair_scores`) on the domain's held-out rows,
    each paired with one of its near neighbours among them by the teacher."""
    from ltd_bert.student.calibrate import NEIGHBOURS, neighbour_pairs
    from ltd_bert.tasks.suite import pair_scores

    pred = student.encode_prepared(sents, weights)
    chars = student.read_chars(sents)
    centred, default, matched, spreads = pair_scores(
        student, pred, vecs, neighbour_pairs(vecs, NEIGHBOURS), chars
    )
    return {"centred": centred, "default": default, "matched": matched, "spread": spreads}


def kept_or_new_map(groups, chars, after, before, new, say):
    """The adapted model's similarity map: the one chosen again over the general kinds and
    the domain (`new`), only when it costs no general kind more than the resampling spread
    of its pairs and gains the domain more than its own, against the model's map applied to
    the adapted predictions; else the model's map (a domain's share of the mean can tip a
    choice that the general kinds pay for)."""
    from ltd_bert.common.stats import cosines, spearman
    from ltd_bert.runtime.base import lengths_mapped
    from ltd_bert.student.calibrate import (
        NEIGHBOURS,
        MixCalibration,
        neighbour_pairs,
        pair_cosines,
        spread,
    )

    old_map = before.similarity_map
    kinds, worse, domain_gain = {}, [], None
    for kind, (pred, targets) in groups.items():
        pairs = neighbour_pairs(targets, NEIGHBOURS)
        i, j = pairs
        teacher = cosines(targets[i], targets[j])
        c = chars[kind]
        kept = pair_cosines(
            lengths_mapped(pred, before.norm_map, c), after.mean, before.mean_scale, pairs, old_map
        )
        chosen = pair_cosines(
            lengths_mapped(pred, new.norm, c), after.mean, new.mean_scale, pairs, new.map
        )
        a, b = 100 * spearman(kept, teacher), 100 * spearman(chosen, teacher)
        sd = spread(chosen, teacher)
        kinds[kind] = {"kept": round(a, 3), "chosen": round(b, 3), "spread": round(sd, 3)}
        if kind == "domain":
            domain_gain = (b - a, sd)
        elif b < a - sd:
            worse.append(kind)
    gains = domain_gain is None or domain_gain[0] > domain_gain[1]
    if not worse and gains:
        return new
    say(
        "similarity map: the model's kept ("
        + (f"the new one costs {', '.join(worse)} more than its spread" if worse else "")
        + ("; " if worse and not gains else "")
        + ("the domain gains less than its spread" if not gains else "")
        + ")"
    )
    return MixCalibration(
        before.mean_scale, before.whiten, old_map, {}, None, before.norm_map, kinds=kinds
    )


def measure(
    student, domain_rows, suite, suite_cache, pairs, teacher_name, say, texts_per_kind=None
) -> dict:
    from ltd_bert.tasks.suite import run_suite

    out = {"domain": domain_fidelity(student, *domain_rows)}
    if len(domain_rows[0]) > 2:  # (few held-out rows: a rough figure, its spread says)
        out["domain_pairs"] = domain_pairs(student, *domain_rows)
    if suite is not False:
        out["suite"] = run_suite(
            student, suite, None, suite_cache, teacher_name, say, texts_per_kind=texts_per_kind
        )
    if pairs:
        from ltd_bert.tasks.evaluate import read_pairs, score

        out["pairs"] = {}
        for f in pairs:
            p = read_pairs(f, None)
            out["pairs"][p.name] = score(p, student.encode)
    return out


def adapt(
    model_dir: str | Path,
    corpus: Sequence[str],
    output: str | Path,
    replay: Sequence[str] = (),
    work: str | Path | None = None,
    teacher_name: str | None = None,
    limit: int | None = None,
    replay_ratio: float = 3.0,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 42,
    threads: int | None = None,
    calib: str | Path | None = None,
    suite: str | Path | None | bool = None,
    pairs: Sequence[str] = (),
    say: Callable[[str], None] | None = None,
    embed_progress: Callable[[str, int], None] | None = None,
    train_progress=None,
    new_words: int | None = None,
    new_pieces: int = 0,
    replay_lines: int | None = None,
    replay_docs: int | None = None,
    texts_per_kind: int | None = None,
    pair_loss: str = "corr",
    pair_settings: dict | None = None,
    replay_targets: str = "teacher",
    pair_anchors: str = "domain",
) -> AdaptReport:
    """Adapt the model at `model_dir` to `corpus` into `output`; see the module docstring. `corpus`
    holds text files, embedded together into WORK/domain.h5, or teacher files (.h5) made with the
    model's teacher settings: those first, in the order given, then the text's rows; the held-out
    rows are the tail of the last. `work` keeps the teacher files (default: OUTPUT.work, reused on
    a rerun); `suite=False` skips the general suite; `pairs` are labelled pair files scored before
    and after; `new_words` words of the domain join the model's word path
    (`TrainConfig.lexicon_add`; None: `NEW_WORDS` when it has one), and `new_pieces` pieces of its
    Latin words (`TrainConfig.lexicon_pieces`). `replay` (teacher or text files) empty: the general
    set shipped with the package; `replay_lines` caps the lines of each replay text used;
    `replay_targets` the targets of replayed text (the shipped set's or text files'): `teacher`
    vectors, or the model's `own` vectors before adapting (`replay.own_replay`: no teacher time,
    and what is kept is what the model did); `replay_docs` documents of the shipped set are
    replayed too, as the windows the model reads, with its own vectors as targets (None: all, 0:
    none); `texts_per_kind` uses only the first texts of each general kind (calibration and suite);
    `pair_loss` the relational term of training (`TrainConfig.pair_loss`: the neighbours of the
    domain's and the replayed rows mined into WORK/pairs-k<K>-<rows>.h5), `pair_settings` its other
    `TrainConfig.pair_*` fields (weight, batch, group, k; k defaults to `PAIR_K`); `pair_anchors`
    the rows its groups are drawn around: `all` training rows, or the `domain`'s only (their
    neighbours may still be replayed rows; `TrainConfig.pair_from`)."""
    from ltd_bert.student.calibrate import calibrate_mix
    from ltd_bert.student.config import TrainConfig
    from ltd_bert.student.data import split
    from ltd_bert.student.model import Student
    from ltd_bert.student.train import train
    from ltd_bert.tasks.evaluate import write_calibration
    from ltd_bert.tasks.suite import (
        DEFAULT_CALIB,
        cache_dir,
        kind_groups,
        load_teacher,
        suite_files,
    )
    from ltd_bert.teacher.store import TARGET_KEYS, TeacherFile, same_setting, setting

    if replay_targets not in REPLAY_TARGETS:
        raise ValueError(f"replay_targets: one of {', '.join(REPLAY_TARGETS)}")
    if pair_anchors not in PAIR_ANCHORS:
        raise ValueError(f"pair_anchors: one of {', '.join(PAIR_ANCHORS)}")
    say = say or (lambda msg: None)
    output = Path(output)
    if output.exists():
        raise InputError(f"{output}: exists; choose another -o or remove it")
    # the folders the measurements and the recalibration need, checked before teacher time
    calib_files = suite_files(calib or DEFAULT_CALIB) if calib is not False else []
    if suite is not False:
        suite_files(suite)
    work = Path(work) if work else output.with_name(output.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    before = Student.load(model_dir)
    if before.meta.get("quantized"):
        raise InputError(f"{model_dir}: adapt the float32 model, then quantize the result")
    if new_words is None:  # the default: as many as chosen when there is a word path
        new_words = NEW_WORDS if before.lexicon is not None else 0
    if (new_words or new_pieces) and before.lexicon is None:
        flag = "--new-words" if new_words else "--new-pieces"
        raise InputError(f"{flag}: {model_dir} has no word path to add words to")
    if epochs == 0 and not (new_words or new_pieces):
        raise InputError(
            "--epochs 0: give --new-words or --new-pieces (no words and no step would change "
            "nothing)"
        )

    def get_teacher():  # loaded once, when first needed (`load_teacher`: the suite's too)
        return load_teacher(teacher_name or before.meta["teacher"])

    rows: dict[str, int] = {}  # each teacher file's rows
    # teacher files are checked before any teacher time is spent
    for flag, paths in (("", corpus), ("--replay ", replay)):
        for path in filter(is_teacher_file, paths):
            with TeacherFile(path) as tf:
                rows[path] = len(tf)
                diff = [
                    k
                    for k in TARGET_KEYS
                    if not same_setting(k, setting(tf.settings, k), setting(before.meta, k))
                ]
            if diff:
                raise InputError(
                    f"{flag}{path}: made with other teacher settings than the model "
                    f"({diff[0]}: {setting(tf.settings, diff[0])!r}, the model's "
                    f"{before.meta.get(diff[0])!r})"
                )
    domain_files = [p for p in corpus if is_teacher_file(p)]
    n_domain = sum(rows[p] for p in domain_files)
    text = [p for p in corpus if not is_teacher_file(p)]
    if text:  # after the teacher files: the held-out rows are its tail
        domain_h5 = work / "domain.h5"
        say(f"teacher: embedding the domain text → {domain_h5}")
        n_domain += embed_text(
            text,
            domain_h5,
            before,
            get_teacher(),
            limit,
            lambda n: embed_progress and embed_progress("domain", n),
        )
        domain_files.append(str(domain_h5))
    with TeacherFile(domain_files[-1]) as tf:
        settings = tf.settings  # (rows with the model's own targets are stamped with them)
    files: list[str] = []
    n_replay = 0
    replay_cap = int(replay_ratio * n_domain)
    if replay_lines is not None:
        replay_cap = min(replay_cap, replay_lines)
    from ltd_bert.suites import REPLAY
    from ltd_bert.tasks.replay import own_replay, replay_texts, shipped_replay

    own = replay_targets == "own"
    shipped = not replay  # the general set shipped with the package
    for i, path in enumerate(replay or [str(REPLAY)]):
        if is_teacher_file(path):
            n_replay += rows[path]
            files.append(path)
            continue
        if own:
            out = work / ("replay-own.h5" if shipped else f"replay-{i}-own.h5")
            name = "the general set shipped with the package" if shipped else path
            say(f"replay: {name}, the model's own vectors → {out}")
            out, n = own_replay(before, replay_texts(path, max(replay_cap, 1)), settings, out)
            if not n:
                raise InputError(f"--replay {path}: no text to replay (the file is empty)")
        elif shipped:
            say("teacher: the general replay set shipped with the package (cached under LTD_HOME)")
            out, n = shipped_replay(
                before,
                get_teacher(),
                replay_cap,
                work,
                lambda n: embed_progress and embed_progress("replay", n),
            )
        else:
            out = work / f"replay-{i}.h5"
            say(f"teacher: embedding replay text {path} → {out}")
            n = embed_text(
                [path],
                out,
                before,
                get_teacher(),
                max(replay_cap, 1),
                lambda n: embed_progress and embed_progress("replay", n),
            )
        n_replay += n
        files.append(str(out))
    n_windows = 0
    if replay_docs != 0:
        from ltd_bert.tasks.replay import replay_docs as shipped_docs

        docs = shipped_docs()[:replay_docs]
        say(f"replay: {len(docs)} documents, the model's own vectors of their windows")
        path, n_windows = own_replay(before, docs, settings, work / "replay-docs.h5")
        files.append(path)
    files += domain_files  # last: the tail of the last one is the held-out part

    cfg = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
        init_from=str(model_dir),
        keep_mean=True,
        patience=max(epochs, 1),
        lexicon_add=new_words,
        lexicon_pieces=new_pieces,
        pair_loss=pair_loss,
        **{"pair_k": PAIR_K, **(pair_settings or {})},
    )
    n_rows = n_domain + n_replay + n_windows
    cfg.window = n_rows  # one window: domain and replay rows shuffled together
    # (other rows or another k: mined again beside it)
    cfg.pairs = str(work / f"pairs-k{cfg.pair_k}-{n_rows}.h5")
    if pair_anchors == "domain":  # the domain's rows come after the replayed ones
        cfg.pair_from = n_replay + n_windows
    _, n_val = split(n_rows, cfg)
    with TeacherFile(domain_files[-1]) as tf:
        if n_val >= len(tf):  # the held-out rows are the last file's
            raise InputError(
                f"{', '.join(corpus)}: too few texts to adapt to ({n_val} held out of {len(tf)})"
            )
        texts, vecs, weights = tf.read(len(tf) - n_val, len(tf))
    domain_rows = (texts, weights, vecs)
    cfg.lexicon_fit_rows = n_domain - n_val  # new words and their fit: the domain's rows
    suite_cache = cache_dir(before)
    say(f"before: measuring {model_dir}")
    scores = {
        "before": measure(
            before, domain_rows, suite, suite_cache, pairs, teacher_name, say, texts_per_kind
        )
    }

    say(
        f"training: {n_domain} domain, {n_replay} replayed rows and {n_windows} document "
        f"windows, {epochs} epoch(s)"
    )
    result = train(
        files,
        output,
        cfg,
        resume=(output.with_name(output.name + ".partial")).exists(),
        progress=train_progress,
    )

    after = Student.load(output)
    groups, chars = kind_groups(after, calib_files, None, teacher_name, say, texts_per_kind)
    groups["domain"] = (after.encode_prepared(texts, weights), vecs)
    chars["domain"] = after.read_chars(texts)
    new = calibrate_mix(groups, after.mean, chars=chars)
    cal = kept_or_new_map(groups, chars, after, before, new, say)
    write_calibration(output, after, cal)
    after = Student.load(output)
    say(f"after: measuring {output}")
    scores["after"] = measure(
        after, domain_rows, suite, suite_cache, pairs, teacher_name, say, texts_per_kind
    )
    added = len(after.lexicon.words) - len(before.lexicon.words) if after.lexicon else 0
    return AdaptReport(
        n_domain, n_replay, n_val, added, result, cal.config_entries(), scores, n_windows
    )


def report_table(report: AdaptReport) -> str:
    """Before and after, as a Markdown table: the domain, each suite kind, the pair files."""
    b, a = report.scores["before"], report.scores["after"]
    lines = ["| measure | before | after | change |", "|---|--:|--:|--:|"]

    def row(name, x, y, fmt="{:.3f}"):
        lines.append(f"| {name} | {fmt.format(x)} | {fmt.format(y)} | {fmt.format(y - x)} |")

    row(f"domain fidelity ({report.held_out} held-out rows)", b["domain"], a["domain"])
    for col in ("matched", "default") if "domain_pairs" in b else ():
        row(
            f"domain pairs, {col} (spread {b['domain_pairs']['spread'][col]:.1f})",
            b["domain_pairs"][col],
            a["domain_pairs"][col],
            "{:.1f}",
        )
    if "suite" in b:
        for kb, ka in zip(b["suite"], a["suite"], strict=True):
            row(f"suite {kb.kind}: fidelity", kb.fidelity, ka.fidelity)
        mb = fmean(k.fidelity for k in b["suite"])
        ma = fmean(k.fidelity for k in a["suite"])
        row("suite, mean of kinds: fidelity", mb, ma)
    for name in b.get("pairs", {}):
        row(f"{name}: Spearman × 100", b["pairs"][name], a["pairs"][name], "{:.2f}")
    return "\n".join(lines)
