from __future__ import annotations

import json
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from ltd_bert.common.errors import InputError, ModelError
from ltd_bert.student.model import (
    BiLSTMStudent,
    Student,
    StudentConfig,
    batch_tensors,
    build_vocab,
    narrow,
    pooled_states,
    unit_importance,
    widen,
)
from ltd_bert.student.train import train


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BiLSTMStudent(
        StudentConfig(vocab_size=20, embedding_dim=6, hidden_size=5, output_dim=7, dropout=0.0)
    ).eval()


def test_forward_shape_and_exact_weights(model):
    ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    lengths = torch.tensor([4, 2])
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]])
    with torch.no_grad():
        out = model(ids, lengths, w)
        states = model.token_states(ids, lengths)  # (B, T, 2H)
        by_hand = torch.stack([sum(w[b, t] * states[b, t] for t in range(4)) for b in range(2)])
        expected = model.proj(by_hand)
    assert out.shape == (2, 7) and states.shape == (2, 4, 10)
    torch.testing.assert_close(out, expected)


def test_padding_does_not_change_a_vector(model):
    short = (torch.tensor([[6, 7, 8]]), torch.tensor([3]), torch.tensor([[0.2, 0.3, 0.5]]))
    batch = (
        torch.tensor([[2, 3, 4, 5, 9, 10], [6, 7, 8, 0, 0, 0]]),
        torch.tensor([6, 3]),
        torch.tensor([[0.1] * 5 + [0.5], [0.2, 0.3, 0.5, 0, 0, 0]]),
    )
    with torch.no_grad():
        alone = model(*short)[0]
        together = model(*batch)[1]
    torch.testing.assert_close(alone, together, rtol=1e-6, atol=1e-6)


def test_vocab_and_batch_tensors():
    vocab = build_vocab(["aab", "abc", "d"], min_count=2)
    assert vocab == ["<pad>", "<unk>", "a", "b"]
    index = {c: i for i, c in enumerate(vocab)}
    ids, lengths, w = batch_tensors(
        ["abz", "b"], [np.array([0.5, 0.25, 0.25]), np.array([1.0])], index, max_chars=2
    )
    assert ids.tolist() == [[2, 3], [3, 0]]
    assert lengths.tolist() == [2, 1]
    np.testing.assert_allclose(w.numpy(), [[2 / 3, 1 / 3], [1.0, 0.0]], rtol=1e-6)  # renormalised


@pytest.fixture(scope="module")
def trained(tiny_teacher_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model"
    result = train([str(tiny_teacher_file)], out, tiny_train_config())
    return out, result


def test_training_lowers_the_loss(trained):
    out, result = trained
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3
    assert metrics[-1]["val_loss"] < metrics[0]["val_loss"]
    assert result["best"]["val_cos"] == max(m["val_cos"] for m in metrics)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["student"]["output_dim"] == 16 and cfg["centered"] is True
    assert 0.0 <= cfg["mean_scale"] <= 2.0
    assert cfg["eps"] == 1.0 and cfg["prefix"] == ""
    assert not out.with_name("model.partial").exists()


def test_save_load_encode_identical(trained, tmp_path):
    out, _ = trained
    s = Student.load(out)
    sents = ["今天天气很好", "", "我们去公园散步吧。"]
    a = s.encode(sents)
    s.save(tmp_path / "copy")
    b = Student.load(tmp_path / "copy").encode(sents)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 16) and not a[1].any()  # an empty line gives zeros
    np.testing.assert_allclose(s.encode(sents[2:])[0], a[2], rtol=1e-5, atol=1e-6)
    n = s.encode(sents, normalize=True)
    assert np.linalg.norm(n[0]) == pytest.approx(1.0, abs=1e-5)
    c = s.encode(sents, space="centred")
    t = s.encode(sents, space="teacher")
    np.testing.assert_allclose(t[0] - s.mean, c[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a[0] - s.mean_scale * s.mean, c[0], rtol=1e-5, atol=1e-5)
    assert not t[1].any() and not c[1].any()
    with pytest.raises(ValueError, match="space must be one of"):
        s.encode(sents, space="raw")


def test_similarity_map_applies_saves_and_defaults(trained, tmp_path):
    from safetensors.torch import save_file

    from ltd_bert.student.quantize import load_quantized, quantize_model

    out, _ = trained
    s = Student.load(out)
    sents = ["今天天气很好", "", "我们去公园散步吧。"]
    c = s.encode(sents, space="centred")
    w = torch.linspace(0.5, 1.5, 16).diag()  # rescale each dimension
    s.model.similarity.copy_(w)
    s.meta = dict(s.meta, whiten=0.2, mean_scale=0.5)
    v = s.encode(sents)
    np.testing.assert_allclose(v[0], c[0] @ w.numpy().T + 0.5 * s.mean, rtol=1e-5, atol=1e-6)
    assert not v[1].any()  # an empty sentence still gives zeros
    np.testing.assert_array_equal(s.encode(sents, space="centred"), c)  # other spaces: no map
    s.save(tmp_path / "w")
    np.testing.assert_array_equal(Student.load(tmp_path / "w").encode(sents), v)
    # int8 keeps the map in float32
    quantize_model(tmp_path / "w", tmp_path / "q")
    np.testing.assert_array_equal(load_quantized(tmp_path / "q").similarity_map, w.numpy())
    # a folder from before the map existed loads with the identity
    state = load_file(str(out / "model.safetensors"))
    state.pop("similarity", None)
    old = tmp_path / "old"
    shutil.copytree(out, old)
    save_file(state, str(old / "model.safetensors"))
    np.testing.assert_array_equal(Student.load(old).similarity_map, np.eye(16))


def test_norm_map_gives_the_similarity_vectors_their_lengths(trained, tmp_path):
    from ltd_bert.runtime.base import NORM_EXTRA
    from ltd_bert.runtime.light import LightStudent

    out, _ = trained
    s = Student.load(out)
    sents = ["今天天气很好", "", "我们去公园散步吧。", "好" * 5000]
    c = s.encode(sents, space="centred")
    norm = np.zeros(16 + NORM_EXTRA + 2, np.float32)
    norm[17] = 0.5  # length = sqrt(characters read), fitted on 1 to 10,000 characters
    norm[-2:] = 1, 10_000
    s.model.similarity.copy_(torch.eye(16))
    s.meta = dict(s.meta, whiten=0.0, mean_scale=0.5, norm_map=norm.tolist())
    v = s.encode(sents)
    read = np.array([6, 0, 9, s.max_chars])  # a text past max_chars: the characters read
    np.testing.assert_array_equal(s.read_chars(sents), read)
    want = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    want = want * np.sqrt(read)[:, None]
    want[read > 0] += 0.5 * s.mean
    np.testing.assert_allclose(v, want, rtol=1e-4, atol=1e-5)
    assert not v[1].any()
    np.testing.assert_array_equal(s.encode(sents, space="centred"), c)  # only the default
    s.save(tmp_path / "n")
    np.testing.assert_allclose(Student.load(tmp_path / "n").encode(sents), v, rtol=1e-6)
    np.testing.assert_allclose(LightStudent.load(tmp_path / "n").encode(sents), v, atol=1e-4)
    # a map of the wrong width: the folder's error, not a shape error later
    meta = json.loads((tmp_path / "n" / "config.json").read_text(encoding="utf-8"))
    meta["norm_map"] = [0.0] * 5
    (tmp_path / "n" / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match=f"norm_map must be a list of {16 + NORM_EXTRA + 2}"):
        Student.load(tmp_path / "n")


def test_resume_equals_uninterrupted(tiny_teacher_file, trained, tmp_path):
    out, _ = trained
    resumed = tmp_path / "model"
    cfg = tiny_train_config()
    with pytest.raises(KeyboardInterrupt):
        train([str(tiny_teacher_file)], resumed, cfg, stop_after_steps=23)
    assert (tmp_path / "model.partial" / "checkpoint.pt").is_file() and not resumed.exists()
    result = train([str(tiny_teacher_file)], resumed, cfg, resume=True)
    assert result["resumed"]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_init_from_continues_the_model(tiny_teacher_file, trained, tmp_path):
    out, result = trained
    # sizes and vocabulary come from the model, not from the config; with a learning rate
    # of almost zero, training does not move it: the validation cosine is the model's own
    cfg = tiny_train_config(embedding_dim=64, hidden_size=64, epochs=1, lr=1e-12)
    cfg.init_from = str(out)
    again = train([str(tiny_teacher_file)], tmp_path / "again", cfg)
    meta = json.loads((tmp_path / "again" / "config.json").read_text())
    assert meta["student"]["embedding_dim"] == 8 and meta["student"]["hidden_size"] == 12
    assert meta["train"]["init_from"] == str(out.resolve())
    assert json.loads((tmp_path / "again" / "vocab.json").read_text()) == json.loads(
        (out / "vocab.json").read_text()
    )
    # (the folder stores float16: the loaded model is the trained one to ~1e-4)
    assert again["best"]["val_cos"] == pytest.approx(result["best"]["val_cos"], abs=2e-4)


def test_text_window_trains_and_validates_as_encode_reads(tiny_teacher_file, trained, tmp_path):
    """`--text-window N`: training and validation read long texts in windows of N, and the
    model records N for `encode`; with no learning, its validation cosine is that of the
    same model reading in windows (not the whole-text one)."""
    out, result = trained
    cfg = tiny_train_config(epochs=1, lr=1e-12, text_window=6)
    cfg.init_from = str(out)
    again = train([str(tiny_teacher_file)], tmp_path / "win", cfg)
    meta = json.loads((tmp_path / "win" / "config.json").read_text())
    assert meta["window"] == 6 and meta["train"]["text_window"] == 6
    assert Student.load(tmp_path / "win").window == 6
    assert again["best"]["val_cos"] != pytest.approx(result["best"]["val_cos"], abs=1e-3)
    whole = train([str(tiny_teacher_file)], tmp_path / "whole", replace(cfg, text_window=0))
    assert "window" not in json.loads((tmp_path / "whole" / "config.json").read_text())
    assert whole["best"]["val_cos"] == pytest.approx(result["best"]["val_cos"], abs=2e-4)


@pytest.mark.parametrize("layers", [1, 2])
def test_widen_keeps_the_vectors(layers):
    torch.manual_seed(0)
    model = BiLSTMStudent(StudentConfig(30, 8, 12, layers, 0.1, 16)).eval()
    wide = widen(model, 11, 20, seed=1).eval()
    assert (wide.config.embedding_dim, wide.config.hidden_size) == (11, 20)
    ids = torch.randint(2, 30, (4, 7))
    ids[1, 5:] = 0
    lengths = torch.tensor([7, 5, 7, 1])
    w = torch.rand(4, 7) * (ids > 0)
    w = w / w.sum(1, keepdim=True)
    torch.testing.assert_close(wide(ids, lengths, w), model(ids, lengths, w), atol=1e-6, rtol=0)
    # the new units are live: a training step changes the output of the wide model
    wide.train()
    wide(ids, lengths, w).sum().backward()
    assert wide.proj.weight.grad[:, 12:20].abs().sum() > 0
    # a model without projection (2 × hidden = output) gets an identity one
    bare = BiLSTMStudent(StudentConfig(30, 8, 8, 1, 0.0, 16)).eval()
    assert bare.proj is None
    torch.testing.assert_close(
        widen(bare, 8, 10).eval()(ids, lengths, w), bare(ids, lengths, w), atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError, match="can only grow"):
        widen(model, 8, 10)
    # a word path comes along unchanged
    worded = BiLSTMStudent(StudentConfig(30, 8, 12, 1, 0.1, 16, 5, 4)).eval()
    torch.nn.init.normal_(worded.lexicon.proj.weight)
    word_ids = torch.randint(0, 6, (4, 7))
    torch.testing.assert_close(
        widen(worded, 8, 20).eval()(ids, lengths, w, word_ids),
        worded(ids, lengths, w, word_ids),
        atol=1e-6,
        rtol=0,
    )


def test_narrow_keeps_the_chosen_units():
    torch.manual_seed(0)
    model = BiLSTMStudent(StudentConfig(30, 8, 6, 1, 0.1, 16)).eval()
    drop = {"": [1, 4], "_reverse": [0, 2]}  # units no kept unit and no output reads
    with torch.no_grad():
        for d, (suffix, units) in enumerate(drop.items()):
            getattr(model.lstm, f"weight_hh_l0{suffix}")[:, units] = 0.0
            model.proj.weight[:, [d * 6 + u for u in units]] = 0.0
    score = np.ones(12)
    score[[1, 4, 6, 8]] = 0.0  # forward units 1, 4 and backward 0, 2 score lowest
    small = narrow(model, 4, score).eval()
    assert small.config.hidden_size == 4 and small.proj.weight.shape == (16, 8)
    ids = torch.randint(2, 30, (3, 7))
    ids[1, 4:] = 0
    lengths = torch.tensor([7, 4, 2])
    w = torch.rand(3, 7) * (torch.arange(7) < lengths[:, None])
    w = w / w.sum(1, keepdim=True)
    torch.testing.assert_close(small(ids, lengths, w), model(ids, lengths, w), atol=1e-6, rtol=0)
    # the kept units' states are the wide model's, in their order
    states = pooled_states(
        model, {chr(0x4E00 + i): i for i in range(30)}, ["一丁七"], [np.ones(3, np.float32) / 3], 16
    )
    kept = pooled_states(
        small, {chr(0x4E00 + i): i for i in range(30)}, ["一丁七"], [np.ones(3, np.float32) / 3], 16
    )
    np.testing.assert_allclose(kept, states[:, [0, 2, 3, 5, 7, 9, 10, 11]], atol=1e-6)
    imp = unit_importance(model, states.repeat(2, 0))
    assert imp.shape == (12,) and (imp == 0).all()  # one text: no spread
    with pytest.raises(ValueError, match="must be 1 to 6"):
        narrow(model, 7, score)


def test_init_from_grows_the_model(tiny_teacher_file, trained, tmp_path):
    out, result = trained
    cfg = tiny_train_config(hidden_size=20, embedding_dim=0, epochs=1, lr=1e-12, grow=True)
    cfg.init_from = str(out)
    again = train([str(tiny_teacher_file)], tmp_path / "wide", cfg)
    meta = json.loads((tmp_path / "wide" / "config.json").read_text())
    assert meta["student"]["embedding_dim"] == 8 and meta["student"]["hidden_size"] == 20
    # at an almost zero learning rate the wider model still gives the model's vectors
    # (the folder stores float16: the loaded model is the trained one to ~1e-4)
    assert again["best"]["val_cos"] == pytest.approx(result["best"]["val_cos"], abs=2e-4)


def test_init_from_narrows_the_model(tiny_teacher_file, trained, tmp_path):
    import h5py

    from ltd_bert.student.data import split
    from ltd_bert.student.model import unit_importance

    out, _ = trained
    cfg = tiny_train_config(hidden_size=6, embedding_dim=0, epochs=0, grow=True)
    cfg.init_from = str(out)
    train([str(tiny_teacher_file)], tmp_path / "narrow", cfg)
    small = Student.load(tmp_path / "narrow", precision="fp32")
    assert small.model.config.hidden_size == 6 and small.model.proj.weight.shape == (16, 12)
    # on the rows it was fitted on, the refitted projection fits the centred teacher
    # vectors better than the kept units' old columns do
    wide = Student.load(out, precision="fp32")
    with h5py.File(tiny_teacher_file) as f:
        texts = [s.decode() for s in f["sentences"][:]]
        target = f["vectors"][:] - small.mean
    texts, weights = wide.prepare(texts)
    states = pooled_states(wide.model, wide.index, texts, weights, 64)
    n_train, _ = split(len(texts), cfg)  # the trainer chooses units on its training rows
    cut = narrow(wide.model, 6, unit_importance(wide.model, states[:n_train]))
    kept = pooled_states(cut, wide.index, texts, weights, 64)
    old = kept @ cut.proj.weight.detach().numpy().T + cut.proj.bias.detach().numpy()
    new = kept @ small.model.proj.weight.detach().numpy().T + small.model.proj.bias.detach().numpy()
    assert ((new - target) ** 2).mean() < ((old - target) ** 2).mean()
    np.testing.assert_allclose(  # the same units as narrow() keeps
        pooled_states(small.model, small.index, texts[:5], weights[:5], 64), kept[:5], atol=2e-3
    )
    with pytest.raises(InputError, match="2 × 8 = 16 outputs leaves no projection"):
        train(
            [str(tiny_teacher_file)],
            tmp_path / "m",
            tiny_train_config(hidden_size=8, epochs=0, grow=True, init_from=str(out)),
        )


def test_init_from_refuses_other_teacher_vectors(tiny_teacher_file, trained, tmp_path):
    import shutil

    out, _ = trained
    other = tmp_path / "other"
    shutil.copytree(out, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["prefix"] = "query: "
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"other teacher vectors than the data \(prefix differ"):
        train([str(tiny_teacher_file)], tmp_path / "m", tiny_train_config(init_from=str(other)))
    with pytest.raises(InputError, match="--init-from: .*no such model folder"):
        train([str(tiny_teacher_file)], tmp_path / "m", tiny_train_config(init_from="nope"))


def test_model_folder_errors(trained, tmp_path):
    import shutil

    out, _ = trained
    with pytest.raises(ModelError, match="no such model folder"):
        Student.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "vocab.json").unlink()
    with pytest.raises(ModelError, match="missing vocab.json"):
        Student.load(broken)
    newer = tmp_path / "newer"
    shutil.copytree(out, newer)
    cfg = json.loads((newer / "config.json").read_text())
    cfg["format_version"] = 99
    (newer / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="upgrade ltd-bert"):
        Student.load(newer)


@pytest.mark.parametrize("ext", ["npy", "h5", "jsonl", "tsv"])
def test_encode_formats_round_trip(trained, tmp_path, ext):
    from click.testing import CliRunner

    from ltd_bert.cli import cli

    out, _ = trained
    src = tmp_path / "s.txt"
    sents = ["我们去公园", "", "今天天气很好", "长" * 300]
    src.write_text("\n".join(sents) + "\n", encoding="utf-8")
    dest = tmp_path / f"v.{ext}"
    result = CliRunner().invoke(cli, ["encode", str(src), "-m", str(out), "-o", str(dest), "-q"])
    assert result.exit_code == 0, result.output
    expected = Student.load(out, precision="fp32").encode(sents)  # as the numpy runtime
    if ext == "npy":
        got = np.load(dest)
    elif ext == "h5":
        with h5py.File(dest) as f:
            got = f["vectors"][:]
            assert [s.decode() for s in f["sentences"][:]] == sents
    elif ext == "jsonl":
        rows = [json.loads(x) for x in dest.read_text(encoding="utf-8").splitlines()]
        assert [r["sentence"] for r in rows] == sents
        got = np.array([r["vector"] for r in rows])
    else:
        rows = [x.split("\t") for x in dest.read_text(encoding="utf-8").splitlines()]
        assert [r[0] for r in rows] == sents
        got = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert got.shape == (4, 16)


def test_encode_stdout_and_workdir_default(trained, tmp_path):
    from click.testing import CliRunner

    from ltd_bert.cli import cli

    out, _ = trained
    result = CliRunner().invoke(cli, ["encode", "-", "-m", str(out)], input="你好\n再见\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["sentence"] for x in result.output.splitlines()] == ["你好", "再见"]
    result = CliRunner().invoke(cli, ["--workdir", str(tmp_path), "train"])
    assert result.exit_code == 1
    assert "run `ltd teacher-embed` first" in result.output


def test_char_parts_split_batches_of_long_texts():
    from ltd_bert.student.train import char_parts

    cfg = tiny_train_config(batch_chars=250, max_chars=1000)
    rows = np.arange(7)
    assert [list(p) for p in char_parts(rows, [100] * 7, cfg)] == [[0, 1], [2, 3], [4, 5], [6]]
    assert [list(p) for p in char_parts(rows, [10] * 7, cfg)] == [list(range(7))]
    # texts are cut to max_chars: a 5,000-character one counts as 1,000
    assert len(char_parts(rows, [5000] * 7, cfg)) == 7


def test_a_batch_in_parts_trains_like_the_whole_batch(tiny_teacher_file, tmp_path):
    kw = dict(epochs=1, loss="cosine", dropout=0.0, init_embeddings="random")
    train([str(tiny_teacher_file)], tmp_path / "whole", tiny_train_config(**kw))
    train([str(tiny_teacher_file)], tmp_path / "parts", tiny_train_config(batch_chars=60, **kw))
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "parts" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_encode_batches_long_texts_by_characters(trained, monkeypatch):
    from ltd_bert.student import model as student_mod

    s = Student.load(trained[0])
    texts = ["我们去公园散步" * k for k in (1, 40, 3, 90, 2)]
    whole = s.encode(texts)
    monkeypatch.setattr(student_mod, "BATCH_CHARS", 700)  # the 630-char text alone
    np.testing.assert_allclose(s.encode(texts), whole, rtol=1e-5, atol=1e-6)


def test_mixed_windows_take_a_share_of_every_file():
    from ltd_bert.student.data import epoch_plan, mixed_windows, steps_per_epoch

    # two files of 6 and 6 rows, the last 2 rows validation: 10 training rows, windows of 4
    assert mixed_windows(10, [0, 6, 12], 4) == [
        ((0, 2), (6, 7)),
        ((2, 4), (7, 8)),
        ((4, 6), (8, 10)),
    ]
    cfg = tiny_train_config(window=4, batch_size=2, mix_files=True)
    plan = epoch_plan(10, cfg, 0, [0, 6, 12])
    rows = sorted(r for w in plan for s, e in w for r in range(s, e))
    assert rows == list(range(10))  # every training row once, in some window order
    assert steps_per_epoch(10, cfg, [0, 6, 12]) == 6  # 3 + 3 + 4 rows in batches of 2
    # one file, or mix_files off: the plain ranges of before
    plain = tiny_train_config(window=4, batch_size=2)
    assert sorted(epoch_plan(10, plain, 0, [0, 6, 12])) == [((0, 4),), ((4, 8),), ((8, 10),)]
    assert sorted(epoch_plan(10, cfg, 0, [0, 12])) == [((0, 4),), ((4, 8),), ((8, 10),)]


def test_resume_equals_uninterrupted_mixing_two_files(tiny_teacher_file, tmp_path):
    data = [str(tiny_teacher_file), str(tiny_teacher_file)]
    cfg = tiny_train_config(epochs=1, window=60, mix_files=True)
    whole = train(data, tmp_path / "whole", cfg)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "resumed", cfg, stop_after_steps=11)
    assert train(data, tmp_path / "resumed", cfg, resume=True)["resumed"]
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert whole["best"]["step"] > 0
