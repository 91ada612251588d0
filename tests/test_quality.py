"""The fidelity suite (`ltd eval suite`), the mixed calibration and `ltd adapt`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SAMPLE_CORPUS, assert_one_error

import ltd_bert
from ltd_bert.cli import cli
from ltd_bert.common.stats import cosines
from ltd_bert.student.calibrate import calibrate_mix, neighbour_pairs, pair_fidelity
from ltd_bert.student.model import Student
from ltd_bert.teacher.model import PoolingSettings, Teacher
from ltd_bert.text.clean import clean_text

LINES = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def suite(tmp_path):
    """Two kinds of 30 sample lines each (lines the tiny model did not train on)."""
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "a_short.txt").write_text("\n".join(LINES[300:330]) + "\n", encoding="utf-8")
    (folder / "b_more.txt").write_text("\n".join(LINES[330:360]) + "\n", encoding="utf-8")
    return folder


def test_suite_fidelity_is_the_centred_cosine_to_the_teacher(
    tiny_model, tiny_bert, suite, tmp_path
):
    from ltd_bert.tasks.suite import run_suite

    model, _ = tiny_model
    student = Student.load(model)
    rows = run_suite(student, suite, cache=tmp_path / "cache", teacher=str(tiny_bert))
    assert [r.kind for r in rows] == ["a_short", "b_more"] and rows[0].texts == 30
    # by hand: the teacher's vectors of the kind, the student's centred ones
    texts = [clean_text(x) for x in LINES[300:330]]
    teacher = Teacher(str(tiny_bert))
    t, _ = teacher.embed(
        texts,
        [student.weighter.char_weights(x) for x in texts],
        PoolingSettings("idf", -1, "", 256),
    )
    pred = student.encode(texts, space="centred")
    assert rows[0].fidelity == pytest.approx(
        float(cosines(pred, t - student.mean).mean()), abs=1e-5
    )
    pairs = neighbour_pairs(t, 10)
    assert rows[0].pairs_centred == pytest.approx(
        pair_fidelity(pred, t, student.mean, 0.0, pairs), abs=1e-3
    )
    # like for like: the teacher's centred vectors on the teacher's side; and a spread each
    assert rows[0].pairs_matched == pytest.approx(
        pair_fidelity(pred, t - student.mean, student.mean, 0.0, pairs), abs=1e-3
    )
    assert set(rows[0].spread) == {"centred", "default", "matched"}
    assert all(0 < v < 60 for v in rows[0].spread.values())
    assert rows[0].mean_chars == pytest.approx(np.mean([len(x) for x in texts]))


def test_suite_first_texts_per_kind(tiny_model, tiny_bert, suite, tmp_path, monkeypatch):
    """`texts_per_kind`: each kind's first texts, embedded into a file of their own; once the
    whole kind is cached, its first rows serve without the teacher."""
    from ltd_bert.tasks import suite as suite_mod

    student = Student.load(tiny_model[0])
    cache = tmp_path / "c"
    some = suite_mod.run_suite(
        student, suite, ["a_short"], cache, str(tiny_bert), texts_per_kind=12
    )
    assert some[0].texts == 12 and len(list(cache.glob("a_short-*-first12.h5"))) == 1
    whole = suite_mod.run_suite(student, suite, ["a_short"], cache, str(tiny_bert))
    assert whole[0].texts == 30

    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr("ltd_bert.teacher.model.Teacher.__init__", no_teacher)
    (cache / next(cache.glob("a_short-*-first12.h5")).name).unlink()
    again = suite_mod.run_suite(student, suite, ["a_short"], cache, "x", texts_per_kind=12)
    assert again[0].fidelity == pytest.approx(some[0].fidelity, abs=1e-6)
    more = suite_mod.run_suite(student, suite, ["a_short"], cache, "x", texts_per_kind=50)
    assert more[0].texts == 30 and more[0].fidelity == whole[0].fidelity  # all it has


def test_suite_teacher_vectors_are_cached(tiny_model, tiny_bert, suite, tmp_path, monkeypatch):
    from ltd_bert.tasks import suite as suite_mod

    model, _ = tiny_model
    student = Student.load(model)
    first = suite_mod.run_suite(student, suite, cache=tmp_path / "c", teacher=str(tiny_bert))

    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr("ltd_bert.teacher.model.Teacher.__init__", no_teacher)
    again = suite_mod.run_suite(student, suite, cache=tmp_path / "c", teacher=str(tiny_bert))
    assert [r.fidelity for r in again] == [r.fidelity for r in first]
    # a changed kind file is embedded again (the cache holds other texts)
    monkeypatch.undo()
    (suite / "a_short.txt").write_text("\n".join(LINES[400:425]) + "\n", encoding="utf-8")
    changed = suite_mod.run_suite(student, suite, ["a_short"], tmp_path / "c", str(tiny_bert))
    assert changed[0].texts == 25


def test_cross_pairs_each_document_with_a_near_sentence():
    from ltd_bert.tasks.suite import cross_pairs

    docs = np.array([[1, 0], [0, 1]], np.float32)
    sents = np.array([[0.9, 0.1], [0.1, 0.9], [-1, -1]], np.float32)
    i, j = cross_pairs(docs, sents, neighbours=1)
    assert i.tolist() == [0, 1] and j.tolist() == [2, 3]  # indices into [docs; sents]
    i, j = cross_pairs(docs, sents, neighbours=2, seed=3)  # one of the two nearest
    assert set(j.tolist()) <= {2, 3} and len(j) == 2


def test_cross_row_only_with_documents_and_sentences(tiny_model):
    from ltd_bert.student.calibrate import pair_fidelity
    from ltd_bert.tasks.suite import CROSS, KindVectors, cross_pairs, cross_row

    student = Student.load(tiny_model[0])
    rng = np.random.default_rng(0)
    d = student.dim
    kinds = {
        k: KindVectors(rng.normal(size=(n, d)), rng.normal(size=(n, d)), chars, np.full(n, chars))
        for k, n, chars in (("docs", 12, 450.0), ("short", 15, 11.0), ("mid", 9, 40.0))
    }
    row = cross_row(student, kinds)
    assert (row.kind, row.texts, row.mean_chars, row.fidelity) == (CROSS, 12, None, None)
    pred = np.concatenate([kinds[k].pred for k in ("docs", "short", "mid")])
    targets = np.concatenate([kinds[k].targets for k in ("docs", "short", "mid")])
    pairs = cross_pairs(targets[:12], targets[12:])
    assert row.pairs_centred == pytest.approx(
        pair_fidelity(pred, targets, student.mean, 0.0, pairs)
    )
    assert cross_row(student, {"short": kinds["short"], "mid": kinds["mid"]}) is None
    assert cross_row(student, {"docs": kinds["docs"]}) is None


def test_calibrate_mix_keeps_every_kind_above_its_centred_vectors():
    rng = np.random.default_rng(0)
    mean = np.zeros(8, np.float32)
    mean[0] = 3.0
    groups = {}
    for name, noise in (("clean", 0.05), ("noisy", 0.8)):
        t = rng.normal(size=(300, 8)).astype(np.float32) + mean
        pred = (t - mean) + noise * rng.normal(size=t.shape).astype(np.float32)
        groups[name] = (pred, t)
    cal = calibrate_mix(groups, mean, scales=(0.0, 0.5, 1.0), alphas=(0.0, 0.25))
    for k, s in cal.kinds.items():
        assert s["chosen"] >= s["centred"], k
    # every candidate kept in `scores` qualifies; the choice is one of them
    assert cal.score in [v for t in cal.scores.values() for v in t.values()]
    entries = cal.config_entries()
    assert set(entries["calibration_kinds"]) == {"clean", "noisy"}


def test_pick_choice_prefers_the_worst_kinds_kept_gain():
    from ltd_bert.student.calibrate import pick_choice

    scores = {0.0: {0.0: 50.0, 0.2: 60.0, 0.3: 65.0}, 0.05: {0.2: 61.0}}
    kept = {(0.0, 0.0): 0.0, (0.0, 0.2): 0.8, (0.0, 0.3): 0.1, (0.05, 0.2): 0.8}
    # s 0.3 has the best mean, but its worst kind keeps only 0.1; of the two keeping 0.8,
    # the better mean
    assert pick_choice(scores, kept) == (0.05, 0.2)
    kept[(0.05, 0.2)] = 0.7
    assert pick_choice(scores, kept) == (0.0, 0.2)
    assert pick_choice({0.0: {0.0: 50.0}}, {(0.0, 0.0): 0.0}) == (0.0, 0.0)  # centred only


def test_resampled_pairs_tell_a_real_gain_from_noise():
    """`calibrate_mix`'s check: the share of resampled pairs on which a choice orders a
    kind's pairs worse than the centred vectors."""
    from ltd_bert.student.calibrate import _Resampled

    rng = np.random.default_rng(2)
    teacher = rng.normal(size=400)
    centred = teacher + rng.normal(size=400)  # Spearman ~0.7
    r = _Resampled(teacher, centred, seed=0)
    assert r.worse_share(centred) == 0.0  # never worse than itself
    assert r.worse_share(teacher + 0.3 * rng.normal(size=400)) == 0.0  # far better
    assert r.worse_share(teacher + 3 * rng.normal(size=400)) == 1.0  # far worse
    # as good on this sample, give or take noise: worse on a good share of resamples
    same = centred + 0.3 * rng.normal(size=400)
    assert 0.05 < r.worse_share(same) < 0.95


def test_calibrate_mix_falls_back_to_centred_when_the_mean_hurts_a_kind():
    rng = np.random.default_rng(1)
    mean = np.ones(6, np.float32) * 5
    # the teacher's vectors are spread round 0, not round the model's mean: adding the
    # mean turns the student's cosines into distances, which order pairs otherwise
    t = rng.normal(size=(250, 6)).astype(np.float32) * rng.uniform(0.2, 3, (250, 1))
    pred = (t + 0.05 * rng.normal(size=t.shape)).astype(np.float32)
    cal = calibrate_mix({"only": (pred, t)}, mean, scales=(0.0, 0.5, 1.0), alphas=(0.0,))
    assert list(cal.scores[0.0]) == [0.0]  # the others order its pairs worse
    assert (cal.mean_scale, cal.whiten) == (0.0, 0.0)
    np.testing.assert_array_equal(cal.map, np.eye(6, dtype=np.float32))


def test_eval_suite_cli(tiny_model, tiny_bert, suite, tmp_path):
    model, _ = tiny_model
    args = ["eval", "suite", "-m", str(model), "--suite", str(suite), "--teacher", str(tiny_bert)]
    args += ["--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| a_short | 30 |" in result.output and "| mean of kinds |" in result.output
    assert "documents × sentences" not in result.output  # no kind of documents here
    result = CliRunner().invoke(cli, [*args, "--json", "--kind", "b_more"])
    assert [r["kind"] for r in json.loads(result.output)] == ["b_more"]
    result = CliRunner().invoke(cli, [*args, "--kind", "nope"])
    assert_one_error(result, "--kind 'nope'", "a_short")
    result = CliRunner().invoke(cli, [*args[:4], "--suite", str(tmp_path / "none")])
    assert_one_error(result, "no suite folder")


def test_eval_suite_cli_row_across_kinds(tiny_model, tiny_bert, suite, tmp_path):
    docs = ["".join(LINES[500 + 20 * i : 520 + 20 * i]) for i in range(12)]
    assert min(map(len, docs)) >= 200
    (suite / "c_docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    model, _ = tiny_model
    args = ["eval", "suite", "-m", str(model), "--suite", str(suite), "--teacher", str(tiny_bert)]
    args += ["--cache", str(tmp_path / "cache"), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["kind"] for r in rows] == ["a_short", "b_more", "c_docs", "documents × sentences"]
    assert rows[-1]["texts"] == 12 and rows[-1]["fidelity"] is None
    result = CliRunner().invoke(cli, args[:-1])
    assert "| documents × sentences (each document with a near sentence) | 12 | | |" in (
        result.output
    )


def test_eval_suite_calibrate_on_writes_the_map(tiny_model, tiny_bert, suite, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model[0], model)
    args = ["eval", "suite", "-m", str(model), "--suite", str(suite), "--teacher", str(tiny_bert)]
    args += ["--cache", str(tmp_path / "cache"), "--calibrate-on", str(suite)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "config.json").read_text())
    assert set(meta["calibration_kinds"]) == {"a_short", "b_more"}
    for s in meta["calibration_kinds"].values():
        assert s["chosen"] >= s["centred"]


def domain_text(tmp_path, n: int):
    """tmp_path/domain.txt: `n` sample lines the tiny model did not train on."""
    domain = tmp_path / "domain.txt"
    domain.write_text("\n".join(LINES[500 : 500 + n]) + "\n", encoding="utf-8")
    return domain


@pytest.mark.slow
def test_adapt_continues_training_with_replay_and_keeps_the_mean(
    tiny_model, tiny_bert, suite, tmp_path
):
    from ltd_bert.tasks.adapt import PAIR_K, adapt, report_table

    model, teacher_file = tiny_model
    domain = domain_text(tmp_path, 200)
    out = tmp_path / "adapted"
    report = adapt(
        model,
        [str(domain)],
        out,
        [str(teacher_file)],
        teacher_name=str(tiny_bert),
        calib=suite,
        suite=suite,
        epochs=1,
        batch_size=16,
        pair_loss="corr",
        replay_docs=3,
    )
    assert report.domain_rows == 200 and report.replay_rows > 0 and report.held_out > 0
    assert report.replay_windows >= 3  # the shipped documents' windows, the model's targets
    # the relational term: neighbours mined over the domain's and the replayed rows
    rows = report.domain_rows + report.replay_rows + report.replay_windows
    assert (tmp_path / "adapted.work" / f"pairs-k{PAIR_K}-{rows}.h5").is_file()
    assert Student.load(out).meta["train"]["pair_loss"] == "corr"
    for side in ("before", "after"):
        assert set(report.scores[side]["domain_pairs"]) == {
            "centred",
            "default",
            "matched",
            "spread",
        }
    before, after = Student.load(model), Student.load(out)
    np.testing.assert_array_equal(before.mean, after.mean)  # targets centred as before
    assert after.meta["train"]["init_from"] == str(model.resolve())
    assert "domain" in after.meta["calibration_kinds"]
    table = report_table(report)
    assert "domain fidelity" in table and "suite a_short: fidelity" in table
    assert "domain pairs, matched" in table
    # the teacher file of the domain is kept and reused; the output is not overwritten
    assert (tmp_path / "adapted.work" / "domain.h5").is_file()
    with pytest.raises(Exception, match="exists"):
        adapt(model, [str(domain)], out, [str(teacher_file)], teacher_name=str(tiny_bert))


@pytest.mark.slow
def test_adapt_takes_domain_teacher_files_as_they_are(tiny_model, tiny_bert, suite, tmp_path):
    """A domain teacher file is used as it is, the text's rows come after it, and the
    held-out rows are the text's tail."""
    from ltd_bert.tasks.adapt import adapt, domain_fidelity
    from ltd_bert.teacher.store import TeacherFile

    model, teacher_file = tiny_model
    domain = domain_text(tmp_path, 200)
    out = tmp_path / "adapted"
    report = adapt(
        model,
        [str(domain), str(teacher_file)],
        out,
        [str(teacher_file)],
        teacher_name=str(tiny_bert),
        calib=suite,
        suite=False,
        batch_size=16,
        replay_docs=0,
    )
    assert report.replay_windows == 0
    with TeacherFile(teacher_file) as tf:
        assert report.domain_rows == len(tf) + 200
    with TeacherFile(tmp_path / "adapted.work" / "domain.h5") as tf:
        assert len(tf) == 200
        texts, vecs, weights = tf.read(200 - report.held_out, 200)
    assert 0 < report.held_out < 200
    before = domain_fidelity(Student.load(model), texts, weights, vecs)
    assert report.scores["before"]["domain"] == pytest.approx(before)


@pytest.mark.slow
def test_adapt_replays_the_shipped_set_without_replay(
    tiny_model, tiny_bert, suite, tmp_path, monkeypatch
):
    """No --replay: the general set shipped with the package, its first --replay-lines lines,
    their teacher vectors cached under LTD_HOME/replay and reused by the next adapt (a
    smaller one takes a copy of the first rows)."""
    from ltd_bert.suites import REPLAY
    from ltd_bert.tasks.replay import replay_lines
    from ltd_bert.teacher.store import TeacherFile

    assert 30_000 <= replay_lines() <= 45_000 and REPLAY.stat().st_size < 3_000_000
    monkeypatch.setenv("LTD_HOME", str(tmp_path / "home"))
    model, _ = tiny_model
    domain = domain_text(tmp_path, 200)
    base = ["adapt", str(domain), "-m", str(model), "--teacher", str(tiny_bert), "-q"]
    base += [
        "--calib",
        str(suite),
        "--no-suite",
        "--batch-size",
        "16",
        "--work",
        str(tmp_path / "w"),
        "--replay-docs",
        "0",
    ]
    result = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "a"), "--replay-lines", "40"])
    assert result.exit_code == 0, result.output
    assert "200 domain rows, 40 replayed, 0 document windows replayed" in result.output
    # the relational term is adapt's default
    assert Student.load(tmp_path / "a").meta["train"]["pair_loss"] == "corr"
    cached = list((tmp_path / "home" / "replay").glob("*/replay-*.h5"))
    assert len(cached) == 1
    with TeacherFile(cached[0]) as tf:
        assert len(tf) == 40
    stamp = cached[0].stat().st_mtime_ns

    def no_teacher_time(*a, **k):
        raise AssertionError("the replay set was embedded again")

    monkeypatch.setattr("ltd_bert.teacher.embed._embed_block", no_teacher_time)
    result = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "b"), "--replay-lines", "25"])
    assert result.exit_code == 0, result.output
    assert "200 domain rows, 25 replayed, 0 document windows replayed" in result.output
    assert cached[0].stat().st_mtime_ns == stamp
    with TeacherFile(tmp_path / "w" / "replay-shipped.h5") as tf, TeacherFile(cached[0]) as c:
        assert len(tf) == 25 and len(c) == 40 and tf.read(0, 25)[0] == c.read(0, 25)[0]


@pytest.mark.slow
def test_adapt_replays_with_the_models_own_targets(
    tiny_model, tiny_bert, suite, tmp_path, monkeypatch
):
    """--replay-targets own: the replayed lines' targets are the model's own vectors before
    adapting, and no teacher vectors of them are made or cached."""
    from ltd_bert.suites import REPLAY
    from ltd_bert.tasks.replay import replay_texts
    from ltd_bert.teacher.store import TeacherFile

    monkeypatch.setenv("LTD_HOME", str(tmp_path / "home"))
    model, _ = tiny_model
    domain = domain_text(tmp_path, 200)
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(LINES[:12]) + "\n\n", encoding="utf-8")
    args = ["adapt", str(domain), "-m", str(model), "--teacher", str(tiny_bert), "-q"]
    args += ["--calib", str(suite), "--no-suite", "--batch-size", "16", "--replay-docs", "0"]
    args += ["--work", str(tmp_path / "w"), "--replay-lines", "30", "--replay-targets", "own"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a"), "--pair-anchors", "all"])
    assert result.exit_code == 0, result.output
    assert "200 domain rows, 30 replayed, 0 document windows replayed" in result.output
    assert not (tmp_path / "home" / "replay").exists()
    student = Student.load(model)
    with TeacherFile(tmp_path / "w" / "replay-own.h5") as tf:
        rows, vecs, weights = tf.read(0, len(tf))
    first = replay_texts(REPLAY, 30)
    assert len(first) == 30 and rows == student.prepare(first)[0]
    own = student.encode_prepared(rows, weights) + student.mean
    np.testing.assert_allclose(vecs, own, rtol=1e-5, atol=1e-5)
    # a replay text file: its non-blank lines, up to --replay-lines; the relational term's
    # groups drawn around the domain's rows only (the default), which follow the 12 replayed
    b = ["-o", str(tmp_path / "b"), "--replay", str(extra)]
    result = CliRunner().invoke(cli, [*args, *b])
    assert result.exit_code == 0, result.output
    assert "200 domain rows, 12 replayed" in result.output
    with TeacherFile(tmp_path / "w" / "replay-0-own.h5") as tf:
        assert len(tf) == 12
    trained = [json.loads((tmp_path / r / "config.json").read_text())["train"] for r in "ab"]
    assert [t["pair_loss"] for t in trained] == ["corr", "corr"]
    assert [t["pair_from"] for t in trained] == [0, 12]


def test_adapt_cli_errors(tiny_model, tiny_bert, tmp_path, tiny_teacher_file):
    model, _ = tiny_model
    domain = domain_text(tmp_path, 20)
    base = [
        "adapt",
        str(domain),
        "-m",
        str(model),
        "-o",
        str(tmp_path / "o"),
        "--teacher",
        str(tiny_bert),
    ]
    # a replay file of other teacher settings (another IDF) is refused before any training
    result = CliRunner().invoke(cli, [*base, "--replay", str(tiny_teacher_file), "--no-suite"])
    assert_one_error(result, "--replay", "other teacher settings")
    # and a domain teacher file of them, named
    base[1:1] = [str(tiny_teacher_file)]
    result = CliRunner().invoke(cli, [*base, "--replay", str(domain)])
    assert_one_error(result, f"{tiny_teacher_file}: made with other teacher settings")


def test_adapt_checks_its_folders_before_any_teacher_time(tiny_model, tiny_bert, tmp_path):
    model, teacher_file = tiny_model
    domain = domain_text(tmp_path, 20)
    base = ["adapt", str(domain), "-m", str(model), "-o", str(tmp_path / "o")]
    base += ["--teacher", str(tiny_bert), "--replay", str(teacher_file)]
    result = CliRunner().invoke(cli, [*base, "--calib", str(tmp_path / "nowhere")])
    assert_one_error(result, "nowhere", "no suite folder")
    # new words need a word path to join (the tiny model has none)
    result = CliRunner().invoke(cli, [*base, "--new-words", "10"])
    assert_one_error(result, "--new-words", "no word path")
    assert not (tmp_path / "o.work" / "domain.h5").exists()


def test_the_shipped_suite_and_calibration_mix_are_found():
    from ltd_bert.tasks.suite import DEFAULT_CALIB, DEFAULT_SUITE, suite_files

    kinds = [f.stem for f in suite_files(None)]
    assert "short" in kinds and "docs_1000_4000" in kinds and len(kinds) == 10
    # the calibration mix: the same kinds but the headlines and Latin-mixed text (the
    # shipped maps were chosen without them)
    assert [f.stem for f in suite_files(DEFAULT_CALIB)] == [
        k for k in kinds if k not in ("headlines", "latin")
    ]
    # in the package, so that an installed `ltd` finds them (setup.cfg's package data)
    assert DEFAULT_SUITE.parent == Path(ltd_bert.__file__).parent / "suites"
    assert "suites/*/*.txt" in (ROOT / "setup.cfg").read_text(encoding="utf-8")


def test_spread_is_the_resampled_spearman_spread():
    from ltd_bert.student.calibrate import spread

    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    assert spread(a, a) == pytest.approx(0, abs=1e-9)  # every resample agrees fully
    noisy = spread(a, a + rng.normal(size=400))
    # about (1 - r²) / sqrt(n) for a correlation r ≈ 0.7 over 400 pairs: ~2.5 points
    assert 1.5 < noisy < 4.0
    assert spread(a, a + rng.normal(size=400), seed=1) != noisy


def test_adapt_keeps_the_models_map_unless_the_new_one_costs_nothing_and_gains():
    from types import SimpleNamespace

    from ltd_bert.student.calibrate import MixCalibration
    from ltd_bert.tasks.adapt import kept_or_new_map

    rng = np.random.default_rng(0)
    d = 16
    t_gen, t_dom = rng.normal(size=(200, d)), rng.normal(size=(200, d))
    groups = {"general": (t_gen, t_gen), "domain": (t_dom, t_dom)}  # predictions = teacher
    eye, scramble = np.eye(d, dtype=np.float32), rng.normal(size=(d, d)).astype(np.float32)

    def model(similarity):
        return SimpleNamespace(
            similarity_map=similarity,
            mean_scale=0.0,
            whiten=0.0,
            mean=np.zeros(d, np.float32),
            norm_map=None,
        )

    said = []
    # the new map scrambles every kind: the model's (exact) map is kept, and it says why
    new = MixCalibration(0.0, 0.1, scramble, {}, None, None, {})
    chars = {k: np.full(200, 20) for k in groups}
    kept = kept_or_new_map(groups, chars, model(eye), model(eye), new, said.append)
    assert kept is not new and np.array_equal(kept.map, eye)
    assert kept.kinds["general"]["kept"] == pytest.approx(100)
    assert "costs general more than its spread" in said[0]
    # the model's map scrambles, the new one is exact: taken
    new = MixCalibration(0.0, 0.0, eye, {}, None, None, {})
    assert kept_or_new_map(groups, chars, model(eye), model(scramble), new, said.append) is new


def test_own_replay_keeps_the_models_vectors_of_the_windows(tiny_model, tmp_path):
    """The shipped documents are replayed as the windows the model reads them in, each with
    the model's own uncentred vector of it as the target: training on them at step 0 has
    nothing to correct."""
    from ltd_bert.runtime.base import windows
    from ltd_bert.suites import REPLAY_DOCS
    from ltd_bert.tasks.replay import own_replay, replay_docs
    from ltd_bert.teacher.store import TeacherFile

    docs = replay_docs()
    assert 500 <= len(docs) <= 700 and REPLAY_DOCS.stat().st_size < 1_000_000
    assert all(200 <= len(t) <= 4000 for t in docs)
    model, teacher_file = tiny_model
    student = Student.load(model)
    student.window = 100
    with TeacherFile(teacher_file) as tf:
        settings = tf.settings
    path, n = own_replay(student, docs[:2], settings, tmp_path / "docs.h5")
    texts, weights = student.prepare(docs[:2])
    win = windows(texts, weights, 100, student.max_chars)
    assert n == len(win.rows) >= 2 * 2 and not (tmp_path / "docs.h5.partial").exists()
    with TeacherFile(path) as tf:
        assert tf.settings == settings and len(tf) == n
        rows, vecs, stored = tf.read(0, n)
        np.testing.assert_array_equal(tf.f["line"][:], win.owner)
    assert rows == win.rows and all(len(r) <= 100 for r in rows)
    for w, v in zip(stored, win.weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=1e-6)
    own = student.encode_prepared(rows, stored) + student.mean
    np.testing.assert_allclose(vecs, own, rtol=1e-5, atol=1e-5)


def test_head_rows_copies_the_rows_of_a_range_of_input_lines(tiny_model, tmp_path):
    from ltd_bert.tasks.replay import head_rows
    from ltd_bert.teacher.store import TeacherFile

    _, teacher_file = tiny_model
    with TeacherFile(teacher_file) as tf:
        line = np.asarray(tf.f["line"][:])
        n = len(tf)
        every = tf.read(0, n)
    assert head_rows(Path(teacher_file), int(line[-1]) + 1, tmp_path / "all.h5") == (
        str(teacher_file),
        n,
    )
    first, last = int(line[2]), int(line[5])  # rows 2, 3, 4: lines first..last-1
    path, rows = head_rows(Path(teacher_file), last, tmp_path / "part.h5", first)
    inside = (line >= first) & (line < last)
    assert path == str(tmp_path / "part.h5") and rows == int(inside.sum())
    with TeacherFile(path) as tf:
        sents, vecs, _ = tf.read(0, len(tf))
        np.testing.assert_array_equal(tf.f["line"][:], line[inside] - first)
    assert sents == every[0][2:5]
    np.testing.assert_allclose(vecs, every[1][2:5], rtol=1e-3)
