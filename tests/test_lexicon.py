"""The word path (`--lexicon`): its sum by hand, the same vectors from every runtime, the
folder's files, a path added to a trained model fitted to its errors, words added to a path,
and bad folders."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_train_config

from ltd_bert.common.errors import ModelError
from ltd_bert.runtime.lexicon import Lexicon, word_mass
from ltd_bert.student.model import LexiconPath, Student


@pytest.mark.parametrize("path", ["torch", "numpy"])
def test_pooled_by_hand(path, monkeypatch):
    """The sums by hand, through `embedding_bag` (torch loaded) and numpy's products."""
    if path == "numpy":
        monkeypatch.delitem(sys.modules, "torch")
    # words 我们 (id 1), 公园 (id 2); 去 is outside the lexicon
    lex = Lexicon(["我们", "公园"], np.array([[0, 0], [1, 0], [0, 2]], float), np.eye(2))
    text = "我们去公园"
    w = np.array([0.1, 0.1, 0.2, 0.3, 0.3], np.float32)
    words = {"我们去公园": ["我们", "去", "公园"], "去": ["去"]}.get
    out = lex.pooled([text, ""], [w, np.zeros(0)], words, max_chars=100)
    np.testing.assert_allclose(out, [[0.2, 1.2], [0, 0]], atol=1e-6)
    # texts without lexicon words before, between and after
    texts = ["", "去", text, "", text, "去"]
    weights = [np.zeros(0), np.ones(1, np.float32), w, np.zeros(0), w, np.ones(1, np.float32)]
    out = lex.pooled(texts, weights, words, max_chars=100)
    np.testing.assert_allclose(out, [[0, 0], [0, 0], [0.2, 1.2], [0, 0], [0.2, 1.2], [0, 0]])
    # cut to 3 characters: 我们去, weights renormalised to 0.25 0.25 0.5
    out = lex.pooled([text], [w], words, max_chars=3)
    np.testing.assert_allclose(out, [[0.5, 0.0]], atol=1e-6)
    assert lex.char_ids(["我们", "去", "公园"]) == [1, 1, 0, 2, 2]
    assert lex.padded_char_ids([text, ""], words, 4).tolist() == [[1, 1, 0, 2], [0, 0, 0, 0]]


def test_word_mass_by_hand():
    # text 0 whole: 3 characters; text 1 cut from 6 characters to its first 4
    kept = [np.array([0.5, 0.25, 0.25], np.float32), np.array([0.1, 0.1, 0.2, 0.2], np.float32)]
    rows, ids, mass = word_mass(
        [0, 0, 1, 1, 1], [3, 0, 1, 2, 5], [2, 1, 1, 2, 3], kept, [False, True]
    )
    assert rows.tolist() == [0, 1, 1, 1]  # the word of id 0 (not in the lexicon) left out
    assert ids.tolist() == [3, 1, 2, 5]
    # renormalised over the kept 0.6; the last word keeps its one character inside the cut
    np.testing.assert_allclose(mass, [0.75, 0.1 / 0.6, 0.3 / 0.6, 0.2 / 0.6], rtol=1e-6)
    # a cut text whose kept characters weigh nothing: uniform over them
    _, _, mass = word_mass([0, 0], [1, 2], [1, 3], [np.zeros(2, np.float32)], [True])
    np.testing.assert_allclose(mass, [0.5, 0.5])


def test_torch_path_equals_numpy_sum():
    torch.manual_seed(0)
    path = LexiconPath(5, 3, 4)
    torch.nn.init.normal_(path.proj.weight)
    words = ["甲乙", "丙", "丁戊", "己", "庚"]
    lex = path.numpy_lexicon(words)
    texts = ["甲乙丙辛", "丁戊己"]
    cut = {"甲乙丙辛": ["甲乙", "丙", "辛"], "丁戊己": ["丁戊", "己"]}.get
    w = [np.array([0.1, 0.2, 0.3, 0.4], np.float32), np.array([0.5, 0.25, 0.25], np.float32)]
    ids = torch.from_numpy(lex.padded_char_ids(texts, cut, 4))
    padded = torch.zeros(2, 4)
    padded[0], padded[1, :3] = torch.from_numpy(w[0]), torch.from_numpy(w[1])
    with torch.no_grad():
        got = path(ids, padded).numpy()
    np.testing.assert_allclose(got, lex.pooled(texts, w, cut, 100), atol=1e-6)


def test_zero_projection_adds_nothing():
    path = LexiconPath(3, 2, 4)
    ids = torch.tensor([[1, 2, 3, 0]])
    assert torch.equal(path(ids, torch.full((1, 4), 0.25)), torch.zeros(1, 4))


@pytest.fixture(scope="module")
def lexicon_model(tiny_model, tmp_path_factory):
    """The tiny model given a word path of 200 words (fitted, then one epoch)."""
    from ltd_bert.student.train import train

    model, teacher = tiny_model
    out = tmp_path_factory.mktemp("lexicon") / "model"
    train(
        [str(teacher)],
        out,
        tiny_train_config(epochs=1, init_from=str(model), lexicon=200, lexicon_dim=6),
    )
    return out, model


def test_folder_has_the_word_path(lexicon_model):
    out, _ = lexicon_model
    words = json.loads((out / "lexicon.json").read_text(encoding="utf-8"))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert len(words) == 200 == config["student"]["lexicon_size"]
    assert config["student"]["lexicon_dim"] == 6
    assert config["format_version"] == 2
    student = Student.load(out)
    assert student.lexicon.words == words
    assert student.lexicon.embedding.shape == (201, 6)
    assert not student.lexicon.embedding[0].any()  # words outside the lexicon add nothing


def test_runtimes_agree_with_the_word_path(lexicon_model, tmp_path):
    from ltd_bert.runtime.light import LightStudent
    from ltd_bert.student.quantize import quantize_model

    out, _ = lexicon_model
    texts = ["我们去公园散步", "今天天气很好", "", "一个很长的句子" * 5]
    ref = Student.load(out, precision="fp32")
    with_words = ref.encode(texts, space="centred")
    assert np.abs(with_words).sum() > 0
    np.testing.assert_allclose(
        LightStudent.load(out).encode(texts, space="centred"), with_words, atol=1e-5
    )
    texts_c, weights = ref.prepare(texts)
    network = ref.network_prepared(texts_c, weights)
    words = ref.lexicon.pooled(texts_c, weights, ref.weighter.words, ref.max_chars)
    np.testing.assert_allclose(network + words, with_words, atol=1e-6)
    assert np.abs(words).max() > 1e-4  # the fitted path adds something
    # save → load keeps it; int8 keeps the word path in float
    ref.save(tmp_path / "copy")
    np.testing.assert_allclose(
        Student.load(tmp_path / "copy", precision="fp32").encode(texts, space="centred"),
        with_words,
        atol=1e-6,
    )
    quantize_model(out, tmp_path / "int8")
    q = Student.load(tmp_path / "int8")
    assert q.lexicon.words == ref.lexicon.words
    cos = (q.encode(texts[:2]) * ref.encode(texts[:2])).sum(1) / (
        np.linalg.norm(q.encode(texts[:2]), axis=1) * np.linalg.norm(ref.encode(texts[:2]), axis=1)
    )
    assert cos.min() > 0.95


def set_up(teacher, out, cfg):
    """A one-process CPU `Trainer` with its model built (what `run` does before any step)."""
    from ltd_bert.student.train import Trainer

    trainer = Trainer([str(teacher)], out, cfg)
    trainer.rank, trainer.world = 0, 1
    trainer.device = torch.device("cpu")
    trainer._setup()
    return trainer


def fidelity(trainer, sents, vecs, weights, words: bool = True) -> float:
    """Mean cosine of the trainer's model on rows to their centred targets, with the word
    path (its words as the trainer has them) or the network alone."""
    from ltd_bert.student.model import batch_tensors

    index = {c: i for i, c in enumerate(trainer.vocab)}
    ids, lengths, w = batch_tensors(sents, weights, index, 4096)
    trainer.model.eval()
    with torch.no_grad():
        word_ids = trainer.word_ids(sents, ids) if words else None
        p = trainer.model(ids, lengths, w, word_ids).numpy()
    target = vecs - trainer.data.mean
    cos = (p * target).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(target, axis=1)
    return float(cos.mean())


def test_added_word_path_starts_fitted(tiny_model, tmp_path):
    """A path added to a trained model starts at the ridge fit of its errors: before any
    step, the training rows' fidelity is higher than the model's alone."""
    from ltd_bert.student.data import Data

    model, teacher = tiny_model
    cfg = tiny_train_config(epochs=1, init_from=str(model), lexicon=300, lexicon_dim=8)
    trainer = set_up(teacher, tmp_path / "m", cfg)
    data = Data([str(teacher)])
    rows = data.read(0, 150)
    assert fidelity(trainer, *rows) > fidelity(trainer, *rows, words=False) + 0.01
    data.close()
    trainer.data.close()


def test_broken_lexicon_folders(lexicon_model, tmp_path):
    out, _ = lexicon_model
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "lexicon.safetensors").unlink()
    with pytest.raises(ModelError, match="missing lexicon.safetensors"):
        Student.load(broken)
    shutil.copytree(out, tmp_path / "short")
    words = json.loads((out / "lexicon.json").read_text(encoding="utf-8"))
    (tmp_path / "short" / "lexicon.json").write_text(json.dumps(words[:-1]), encoding="utf-8")
    with pytest.raises(ModelError, match="unreadable lexicon"):
        Student.load(tmp_path / "short")


def test_onnx_export_keeps_the_word_path(lexicon_model, tmp_path):
    pytest.importorskip("onnxruntime")
    from ltd_bert.student.export import export_onnx

    out, _ = lexicon_model
    folder = tmp_path / "m"
    shutil.copytree(out, folder)
    export_onnx(folder, folder / "model.onnx")
    texts = ["我们去公园散步", "今天天气很好", ""]
    onnx = Student.load(folder, runtime="onnx")
    assert onnx.lexicon is not None
    np.testing.assert_allclose(
        onnx.encode(texts, space="centred"),
        Student.load(folder, precision="fp32").encode(texts, space="centred"),
        atol=1e-4,
    )


def adapt_to(lexicon_model, tiny_bert, tmp_path, lines, **kw):
    """`adapt` of the lexicon model to `lines` (replaying its teacher file) into
    tmp_path/adapted: (report, the model before, the adapted model)."""
    from ltd_bert.tasks.adapt import adapt

    out, model = lexicon_model
    domain = tmp_path / "domain.txt"
    domain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = adapt(
        out,
        [str(domain)],
        tmp_path / "adapted",
        [str(model.parent / "teacher.h5")],
        teacher_name=str(tiny_bert),
        batch_size=16,
        **{"replay_docs": 3, **kw},  # a few documents: their replay has its own tests
    )
    return report, Student.load(out), Student.load(tmp_path / "adapted")


def test_adapt_keeps_the_word_path(lexicon_model, tiny_bert, tmp_path):
    """`ltd adapt` of a model with a word path: the adapted model keeps (and trains) it, and
    by default the domain's words it lacks join it (at most `NEW_WORDS`)."""
    from conftest import SAMPLE_CORPUS

    from ltd_bert.tasks.adapt import NEW_WORDS

    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[500:600]
    report, before, after = adapt_to(
        lexicon_model, tiny_bert, tmp_path, lines, calib=None, suite=None, epochs=1
    )
    old = len(before.lexicon.words)
    assert after.lexicon.words[:old] == before.lexicon.words
    assert 0 < report.words_added == len(after.lexicon.words) - old <= NEW_WORDS
    trained = after.lexicon.embedding[: old + 1]  # its own rows (and the padding's)
    assert not np.array_equal(trained, before.lexicon.embedding)


def test_words_added_to_a_path_start_fitted(lexicon_model):
    """`lexicon_add`: the most frequent words of the last training rows that the path lacks
    join it after its own words, which keep their rows; before any step the new rows lift
    the fidelity on those rows (the ridge fit of the model's errors, path included)."""
    from collections import Counter

    from ltd_bert.student.data import split
    from ltd_bert.student.train import lexicon_candidates

    out, model = lexicon_model
    teacher = model.parent / "teacher.h5"
    cfg = tiny_train_config(epochs=1, init_from=str(out), lexicon_add=40, lexicon_fit_rows=120)
    trainer = set_up(teacher, out.parent / "grown", cfg)
    before = Student.load(out)
    words = trainer.lexicon_words
    assert words[:200] == before.lexicon.words and len(words) == 240
    n_train, _ = split(trainer.data.n, cfg)
    sents, vecs, weights = trainer.data.read(n_train - 120, n_train)
    counts = Counter(w for t in sents for w in trainer._words_of(t))
    assert words[200:] == [w for w in lexicon_candidates(counts) if w not in set(words[:200])][:40]
    lex = trainer.model.lexicon.embedding.weight.detach().numpy()
    assert np.allclose(lex[:201], before.lexicon.embedding, atol=1e-6)
    assert np.abs(lex[201:]).sum(1).min() > 0
    grown = fidelity(trainer, sents, vecs, weights)
    trainer._use_lexicon(words[:200])  # the same model reading only the old words
    assert grown > fidelity(trainer, sents, vecs, weights) + 0.005
    trainer.data.close()


@pytest.mark.parametrize("epochs", [0, 1])
def test_adapt_adds_new_words(lexicon_model, tiny_bert, tmp_path, epochs):
    """`ltd adapt --new-words`: the adapted model's path holds its old words, then the new;
    with no epoch, nothing else changes (the network's weights and the old word rows)."""
    from conftest import SAMPLE_CORPUS
    from safetensors.numpy import load_file

    out, _ = lexicon_model
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[500:600]
    report, before, after = adapt_to(
        lexicon_model, tiny_bert, tmp_path, lines, suite=False, epochs=epochs, new_words=25
    )
    assert after.lexicon.words[:200] == before.lexicon.words
    assert 0 < report.words_added == len(after.lexicon.words) - 200 <= 25
    assert after.encode(["新的词语"]).shape == (1, before.dim)
    net = [load_file(m / "model.safetensors") for m in (out, tmp_path / "adapted")]
    same = [np.array_equal(net[0][k], net[1][k]) for k in net[0] if k.startswith("lstm.")]
    old_rows = np.array_equal(after.lexicon.embedding[:201], before.lexicon.embedding)
    assert all(same) and old_rows if epochs == 0 else not any(same)


def test_train_word_options_need_a_trained_model(lexicon_model, tiny_model, tmp_path):
    from click.testing import CliRunner
    from conftest import assert_one_error

    from ltd_bert.cli import cli

    model, teacher = tiny_model
    base = ["train", "--data", str(teacher), "-o", str(tmp_path / "m")]
    for flags in (["--epochs", "0"], ["--lexicon-add", "5"], ["--lexicon-pieces", "5"]):
        result = CliRunner().invoke(cli, [*base, *flags])
        assert result.exit_code == 2 and "goes with --init-from" in result.output
    # a model without a word path has none to add words to (the tiny model)
    for flag in ("--lexicon-add", "--lexicon-pieces"):
        result = CliRunner().invoke(cli, [*base, "--init-from", str(model), flag, "5"])
        assert_one_error(result, flag, "has no word path")
    # --epochs 0 with --lexicon-add: the words alone
    out, _ = lexicon_model
    grown = tmp_path / "grown"
    args = ["train", "--data", str(teacher), "-o", str(grown), "--init-from", str(out)]
    result = CliRunner().invoke(cli, [*args, "--epochs", "0", "--lexicon-add", "7", "-q"])
    assert result.exit_code == 0, result.output
    assert len(Student.load(grown).lexicon.words) == 207
    best = json.loads((grown / "config.json").read_text(encoding="utf-8"))["best"]
    assert best["step"] == 0 and 0 < best["val_cos"] <= 1  # evaluated as it starts


def test_pieces_cut_latin_words_outside_the_lexicon():
    """`##` entries are pieces: a Latin word outside the lexicon is cut into them, longest
    first from the left, case aside; words in it, other words, and lexicons without pieces
    are read as before."""
    from ltd_bert.runtime.lexicon import char_word_ids, cut_pieces, word_index

    pieces = {"doc": 2, "ker": 3, "do": 4}
    assert cut_pieces("dockers", pieces, 3) == [(3, 2), (3, 3), (1, 0)]
    assert cut_pieces("xxdo", pieces, 3) == [(2, 0), (2, 4)]
    assert cut_pieces("abc", pieces, 3) == [(3, 0)]
    index = word_index(["我们", "##doc", "##ker", "##do", "docker"])
    assert index.pieces == {"doc": 2, "ker": 3, "do": 4}
    words = ["我们", "用", "Dockers", "和", "docker", "12", "日本語"]
    assert (
        char_word_ids(index, words) == [1, 1, 0] + [2, 2, 2, 3, 3, 3, 0] + [0] + [5] * 6 + [0] * 5
    )
    # without pieces, a word is its own id or 0
    plain = word_index(["我们", "docker"])
    assert char_word_ids(plain, words) == [1, 1, 0] + [0] * 7 + [0] + [2] * 6 + [0] * 5


@pytest.mark.parametrize("path", ["torch", "numpy"])
def test_pooled_with_pieces_by_hand(path, monkeypatch):
    """A cut word's pieces add their rows with their characters' weights, the same sum the
    training path (`padded_char_ids` into `LexiconPath`) makes."""
    if path == "numpy":
        monkeypatch.delitem(sys.modules, "torch")
    # 我们 (id 1), the pieces ab (id 2) and cd (id 3); ABcdx is cut ab|cd|x
    lex = Lexicon(
        ["我们", "##ab", "##cd"], np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float), np.eye(2)
    )
    text = "我们ABcdx"
    w = np.array([0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2], np.float32)
    words = {text: ["我们", "ABcdx"]}.get
    out = lex.pooled([text], [w], words, max_chars=100)
    # 我们: 0.2 × (1, 0); ab: 0.4 × (0, 1); cd: 0.2 × (1, 1); x: nothing
    np.testing.assert_allclose(out, [[0.4, 0.6]], atol=1e-6)
    assert lex.padded_char_ids([text], words, 8).tolist() == [[1, 1, 2, 2, 3, 3, 0, 0]]


def test_piece_candidates_by_hand():
    from collections import Counter

    from ltd_bert.student.train import piece_candidates

    counts = Counter({"Abc": 3, "abd": 1, "我们": 9, "42": 5, "xyz": 1, "known": 7})
    got = piece_candidates(counts, {"known", "##bc"})
    # characters covered: abc 3×3, ab (3 + 1)×2; bc is known, the rest occur once; 我们 and
    # 42 are no Latin words
    assert got == ["##abc", "##ab"]
    assert piece_candidates(counts, {"known"}, min_count=1)[:3] == ["##abc", "##ab", "##bc"]


def test_adapt_adds_pieces(lexicon_model, tiny_bert, tmp_path):
    """`ltd adapt --new-pieces`: `##` pieces of the domain's Latin words join the path after
    its words; a Latin word the domain never showed is read through them (the vector
    changes), and nothing else the model knew does (no epoch)."""
    from ltd_bert.runtime.light import LightStudent
    from ltd_bert.tasks.suite import DEFAULT_SUITE

    lines = (DEFAULT_SUITE / "latin.txt").read_text(encoding="utf-8").splitlines()[:300]
    report, before, after = adapt_to(
        lexicon_model, tiny_bert, tmp_path, lines, suite=False, epochs=0, new_words=0, new_pieces=30
    )
    new = after.lexicon.words[200:]
    assert report.words_added == len(new) == 30 and all(w.startswith("##") for w in new)
    assert np.array_equal(after.lexicon.embedding[:201], before.lexicon.embedding)
    unseen = "我们用Zyxstreaming部署"  # cut: the pieces of the unseen word carry its rows
    assert any(i > 200 for i in after.lexicon.char_ids(after.weighter.words(unseen)))

    def centred(m, text):
        return m.encode([text], space="centred")  # adapt chose the similarity map again

    assert not np.allclose(centred(after, unseen), centred(before, unseen), atol=1e-6)
    light = LightStudent.load(tmp_path / "adapted")  # the numpy runtime reads them too
    np.testing.assert_allclose(centred(light, unseen), centred(after, unseen), atol=1e-5)
    plain = "我们去公园"  # no Latin word: the same vector
    np.testing.assert_allclose(centred(after, plain), centred(before, plain), atol=1e-6)
