"""similarity, index/search, cluster, finetune/predict and plot, on a tiny trained student."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SAMPLE_CORPUS, SAMPLE_SENTENCES, tiny_train_config
from safetensors.torch import load_file

from ltd_bert.cli import cli
from ltd_bert.common.errors import InputError
from ltd_bert.student.model import Student
from ltd_bert.student.train import train
from ltd_bert.tasks import search as search_mod
from ltd_bert.tasks.cluster import kmeans, relabel_by_size
from ltd_bert.tasks.finetune import cosent_loss, read_labelled
from ltd_bert.tasks.plot import curves, matplotlib_available

SENTENCES = SAMPLE_SENTENCES.read_text(encoding="utf-8").splitlines()

WEATHER = ["今天天气很好", "天气不错", "明天会下雨", "阳光很好", "外面很冷", "天气预报说有雪"]
STOCKS = ["股市大跌", "股票上涨", "投资者亏钱", "股民很开心", "基金收益不错", "今日股票暴跌"]
TAILS = ["。", "吧", "啊", "了", "呢"]


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def model(tiny_teacher_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "model"
    train([str(tiny_teacher_file)], out, tiny_train_config(epochs=2))
    return out


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    lines = [f"{w}{t}\t天气" for w in WEATHER for t in TAILS]
    lines += [f"{w}{t}\t股市" for w in STOCKS for t in TAILS]
    order = np.random.default_rng(0).permutation(len(lines))
    path = folder / "train.tsv"
    path.write_text("\n".join(lines[i] for i in order) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classifier(model, labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "clf"
    result = run(
        "finetune", "--train", labelled, "-m", model, "-o", out, "--epochs", 4,
        "--lr", 5e-3, "--batch-size", 8, "--val-fraction", 0.2, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


# --- similarity ---------------------------------------------------------------------------


def test_similarity_two_sentences(model):
    result = run("similarity", SENTENCES[0], SENTENCES[0], "-m", model)
    assert result.exit_code == 0, result.output
    assert result.stdout == "1.0000\n"
    result = run("similarity", SENTENCES[0], SENTENCES[6], "-m", model)
    assert result.exit_code == 0 and -1 <= float(result.stdout) <= 1
    result = run("similarity", SENTENCES[0], "-m", model)
    assert result.exit_code == 2 and "two sentences" in result.output


def test_similarity_pairs_file(model, tmp_path):
    labelled = tmp_path / "pairs.tsv"
    labelled.write_text(
        f"{SENTENCES[0]}\t{SENTENCES[1]}\t5\n\n{SENTENCES[0]}\t{SENTENCES[6]}\t0\n"
        f"{SENTENCES[2]}\t{SENTENCES[2]}\t4\n",
        encoding="utf-8",
    )
    result = run("similarity", "--pairs", labelled, "-m", model)
    assert result.exit_code == 0, result.output
    scores = [float(x) for x in result.stdout.splitlines()]
    assert len(scores) == 3 and scores[2] == pytest.approx(1.0, abs=1e-5)
    assert "3 pairs; Spearman × 100 against the labels" in result.output
    unlabelled = tmp_path / "plain.tsv"
    unlabelled.write_text(f"{SENTENCES[0]}\t{SENTENCES[1]}\n", encoding="utf-8")
    out = tmp_path / "scores.txt"
    result = run("similarity", "--pairs", unlabelled, "-m", model, "-o", out)
    assert result.exit_code == 0, result.output
    assert float(out.read_text()) == pytest.approx(scores[0], abs=1e-5)
    assert "Spearman" not in result.output
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{SENTENCES[0]}\t{SENTENCES[1]}\njust one field\n", encoding="utf-8")
    result = run("similarity", "--pairs", bad, "-m", model)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: {bad}:2: expected sentence1<TAB>sentence2[<TAB>label], got 1 field(s)"
    )


# --- index / search -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    src = folder / "sentences.txt"
    src.write_text("\n".join([*SENTENCES[:6], "", *SENTENCES[6:]]) + "\n", encoding="utf-8")
    out = folder / "index.h5"
    result = run("index", src, "-m", model, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert f"index: {len(SENTENCES)} sentences, dim 16" in result.output
    return out


def test_index_file(index, model):
    with h5py.File(index) as f:
        vecs = f["vectors"][:]
        assert vecs.dtype == np.float32 and f["vectors"].chunks is not None
        assert [s.decode() for s in f["sentences"][:]] == SENTENCES
        assert f["line"][:].tolist() == [*range(1, 7), *range(8, len(SENTENCES) + 2)]
        assert json.loads(f.attrs["model"])["path"] == str(model.resolve())
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert not list(index.parent.glob("*.partial"))


def test_search_finds_each_sentence_itself(index, model, tmp_path):
    result = run("search", index, SENTENCES[5], "-k", 3, "-m", model)
    assert result.exit_code == 0, result.output
    lines = [x.split("\t") for x in result.stdout.splitlines()]
    assert len(lines) == 3 and lines[0][1] == SENTENCES[5]
    assert float(lines[0][0]) == pytest.approx(1.0, abs=1e-4)
    assert float(lines[0][0]) >= float(lines[1][0]) >= float(lines[2][0])
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    result = run("search", index, "--queries", queries, "-k", 1, "-m", model)
    assert result.exit_code == 0, result.output
    rows = [x.split("\t") for x in result.stdout.splitlines()]
    assert [(q, hit) for q, _, hit in rows] == [(s, s) for s in SENTENCES]
    assert all(float(score) == pytest.approx(1.0, abs=1e-4) for _, score, _ in rows)


def test_search_queries_file_json_and_default_model(index, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text(f"{SENTENCES[3]}\n\n{SENTENCES[7]}\n", encoding="utf-8")
    # no -m: the model recorded in the index is used
    result = run("--workdir", tmp_path / "w", "search", index, "--queries", queries, "-k", 2)
    assert result.exit_code == 0, result.output
    rows = [x.split("\t") for x in result.stdout.splitlines()]
    assert [r[0] for r in rows] == [SENTENCES[3]] * 2 + [SENTENCES[7]] * 2
    assert rows[0][2] == SENTENCES[3] and rows[2][2] == SENTENCES[7]
    result = run("search", index, SENTENCES[4], "-k", 50, "--json")
    hit = json.loads(result.stdout)
    assert len(hit["hits"]) == len(SENTENCES)  # k is capped at the index size
    assert hit["hits"][0] == {"score": pytest.approx(1.0, abs=1e-4), "sentence": SENTENCES[4],
                              "line": 5}  # fmt: skip


def test_search_blocks_match_brute_force(model, tmp_path, monkeypatch):
    """Several chunks and blocks, a partial last chunk; raw chunk reads and h5py agree."""
    monkeypatch.setattr(search_mod, "CHUNK_ROWS", 4)
    student = Student.load(model)
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:30]
    src = tmp_path / "s.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = tmp_path / "i.h5"
    n = search_mod.build_index(student, search_mod.model_info(model, student), str(src), path)
    assert n == 30
    q = student.encode(lines[:5] + ["完全不同的一句话"], normalize=True)
    with h5py.File(path) as f:
        expected = q @ f["vectors"][:].T
    with search_mod.Index(path) as idx:
        assert idx._chunk_offsets() is not None
        for block_rows in (8, 10, 1000):
            scores, rows = idx.search(q, 5, block_rows=block_rows)
            for i in range(len(q)):
                top = np.argsort(-expected[i], kind="stable")[:5]
                np.testing.assert_allclose(scores[i], expected[i][top], rtol=1e-5, atol=1e-6)
            assert rows[:5, 0].tolist() == [0, 1, 2, 3, 4]
        monkeypatch.setattr(idx, "_chunk_offsets", lambda: None)
        s2, r2 = idx.search(q, 5, block_rows=8)
        np.testing.assert_allclose(s2, scores, rtol=1e-6)
        assert (r2 == rows).all()


def test_search_other_dimension_is_a_clear_error(model, tmp_path):
    fake = tmp_path / "other.h5"
    with h5py.File(fake, "w") as f:
        f.create_dataset("vectors", data=np.eye(3, 7, dtype=np.float32), chunks=(2, 7))
        f.create_dataset("sentences", data=["a", "b", "c"], dtype=h5py.string_dtype())
        f.create_dataset("line", data=[1, 2, 3])
        f.attrs.update(
            format="ltd-index", format_version=1, model=json.dumps({"path": "/m7", "dim": 7})
        )
    result = run("search", fake, "你好", "-m", model)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {fake}: built with model /m7 (dimension 7); model {model.resolve()} gives "
        "dimension 16: search with -m /m7"
    )
    result = run("search", tmp_path / "nope.h5", "你好", "-m", model)
    assert result.exit_code == 1 and "no such index" in result.output


# --- cluster ------------------------------------------------------------------------------


def test_kmeans_recovers_two_blobs():
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 0.3, (40, 8)) + 5
    b = rng.normal(0.0, 0.3, (25, 8)) - 5
    x = np.concatenate([a, b])[rng.permutation(65)]
    truth = (x.mean(1) > 0).astype(int)
    result = relabel_by_size(kmeans(x, 2, seed=1))
    assert result.converged
    assert (result.labels == 1 - truth).all()  # the larger blob (a, 40 rows) is cluster 0
    again = relabel_by_size(kmeans(x, 2, seed=1))
    np.testing.assert_array_equal(again.centers, result.centers)
    with pytest.raises(InputError, match="between 1 and the number"):
        kmeans(x[:3], 4)
    dup = kmeans(np.ones((5, 2)), 3, seed=0)  # fewer distinct points than k
    assert np.bincount(dup.labels, minlength=3).sum() == 5


def test_cluster_cli(model, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("\n".join([*SENTENCES[:4], "", *SENTENCES[4:]]) + "\n", encoding="utf-8")
    out = tmp_path / "c.tsv"
    result = run("cluster", src, "-k", 3, "-m", model, "-o", out, "--seed", 1)
    assert result.exit_code == 0, result.output
    rows = [x.split("\t") for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(SENTENCES) + 1 and rows[4] == ["-1", ""]
    assert {r[0] for r in rows} == {"-1", "0", "1", "2"}
    summary = result.stdout.splitlines()
    sizes = [int(x.split(": ")[1].split()[0]) for x in summary if x.startswith("cluster ")]
    assert sum(sizes) == len(SENTENCES) and sizes == sorted(sizes, reverse=True)
    assert summary[1].startswith("  ") and summary[-1].startswith("k-means: 3 clusters")
    again = run("cluster", src, "-k", 3, "-m", model, "--seed", 1)
    assert again.stdout == out.read_text(encoding="utf-8")  # no -o: the table on stdout


# --- finetune / predict -------------------------------------------------------------------


def test_cosent_loss_matches_its_formula():
    cos = torch.tensor([0.9, 0.2, 0.5])
    y = torch.tensor([2.0, 0.0, 1.0])
    pairs = [(i, j) for i in range(3) for j in range(3) if y[i] > y[j]]
    expected = torch.log(1 + sum(torch.exp(20 * (cos[j] - cos[i])) for i, j in pairs))
    torch.testing.assert_close(cosent_loss(cos, y), expected)
    assert float(cosent_loss(cos, torch.zeros(3))) == 0.0  # no ordered pair: log(1)


def test_finetune_classify_and_predict(classifier, model, labelled, tmp_path):
    out, result = classifier
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[1]["train_loss"]
    assert all(0 <= r["val_accuracy"] <= 1 for r in records)
    assert "best val_accuracy" in result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["finetuned"]["task"] == "classify" and cfg["finetuned"]["labels"] == 2
    assert cfg["finetuned"]["train_examples"] == 48 and cfg["finetuned"]["valid_examples"] == 12
    assert json.loads((out / "labels.json").read_text()) == ["天气", "股市"]
    student = Student.load(out)  # an ordinary model folder
    assert student.encode(["天气不错"]).shape == (1, 16)
    texts = tmp_path / "t.txt"
    texts.write_text("今天天气很好\n股票大跌了\n", encoding="utf-8")
    result = run("predict", texts, "-m", out)
    assert result.exit_code == 0, result.output
    rows = [x.split("\t") for x in result.stdout.splitlines()]
    assert [r[2] for r in rows] == ["今天天气很好", "股票大跌了"]
    assert all(r[0] in ("天气", "股市") and 0.5 <= float(r[1]) <= 1 for r in rows)
    result = run("predict", texts, "-m", model)
    assert result.exit_code == 1 and "not a classifier" in result.output


def test_finetune_frozen_trains_only_the_head(model, labelled, tmp_path):
    out = tmp_path / "frozen"
    result = run(
        "finetune", "--train", labelled, "-m", model, "-o", out, "--freeze", "--epochs", 2,
        "--valid", labelled, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    a, b = load_file(str(model / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (out / "head.safetensors").is_file()
    cfg = json.loads((out / "config.json").read_text())["finetuned"]
    assert cfg["config"]["freeze"] and cfg["train_examples"] == 60


def test_finetune_pairs(model, tmp_path):
    pairs = [(SENTENCES[2 * i], SENTENCES[2 * i + 1], 5) for i in range(5)]
    pairs += [(SENTENCES[i], SENTENCES[(i + 3) % 12], i % 3) for i in range(12)]
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\t{y}\n" for a, b, y in pairs), encoding="utf-8")
    out = tmp_path / "sts"
    result = run(
        "finetune", "--task", "pairs", "--train", path, "-m", model, "-o", out,
        "--epochs", 2, "--batch-size", 8, "--val-fraction", 0.25, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all("val_spearman" in r for r in records)
    assert json.loads((out / "config.json").read_text())["finetuned"]["task"] == "pairs"
    Student.load(out)
    assert not (out / "head.safetensors").exists()


@pytest.mark.parametrize(
    ("task", "content", "message"),
    [
        (
            "classify",
            "好\t天气\n不好\t天气\n没有标签\n",
            "3: expected text<TAB>label, got 1 field(s)",
        ),
        ("classify", "好\t天气\n\t股市\n", "2: empty text"),
        ("pairs", "a\tb\t1\nc\td\thigh\n", "2: label 'high' is not a number"),
        ("pairs", "a\tb\t1\nc\td\n", "2: no label (expected s1<TAB>s2<TAB>label)"),
    ],
)
def test_finetune_bad_line(model, tmp_path, task, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    result = run("finetune", "--task", task, "--train", path, "-m", model, "-o", tmp_path / "o")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {path}:{message}"]
    assert not (tmp_path / "o").exists()


def test_read_labelled_json_lines(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text('{"text": "你好", "label": 1}\n好\tB\n', encoding="utf-8")
    data = read_labelled(str(path))
    assert data.texts == ["你好", "好"] and data.labels == ["1", "B"] and data.lines == [1, 2]


# --- plot ---------------------------------------------------------------------------------


def test_curves_for_train_and_finetune_metrics():
    train_records = [
        {"step": s, "epoch": 1 + s // 20, "train_loss": 1 / s, "val_loss": 2 / s, "val_cos": s}
        for s in (10, 20, 30, 40)
    ]  # two evaluations per epoch: plotted by step
    c = curves(train_records)
    assert c["x"] == "step" and set(c["loss"]) == {"train_loss", "val_loss"}
    assert c["metric"][0] == "validation centred cosine" and len(c["metric"][1]) == 4
    ft = [{"epoch": 0, "step": 0, "val_loss": 1.0, "val_accuracy": 0.5}]
    ft += [{"epoch": 1, "step": 5, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.7}]
    c = curves(ft)
    assert c["x"] == "epoch" and c["loss"]["train_loss"] == [(1, 0.9)]
    assert c["metric"] == ("validation accuracy", [(0, 0.5), (1, 0.7)])


def test_plot_command(classifier):
    out, result = classifier
    plotted = run("plot", out)
    if matplotlib_available():
        assert plotted.exit_code == 0, plotted.output
        assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    else:  # an optional extra: finetune says it skipped; `ltd plot` says what to install
        assert "matplotlib not installed, no metrics.png" in result.output
        assert plotted.exit_code == 1 and "pip install matplotlib" in plotted.output
