from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_one_error, native_bf16, table

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.teacher.embed import merge_parts, partial_path, teacher_embed
from ltd_bert.teacher.model import PoolingSettings, Teacher
from ltd_bert.teacher.store import TeacherFile
from ltd_bert.text.weights import Weighter

SENTENCES = [
    "我们去公园",
    "",
    "今天天气很好,我们去散步!",
    "他说中国很大",
    "   ",
    "ABC 123 你好",
    "我爱北京",
    "这个人不在家",
    "她是我们的好人",
    "大家说好",
    "它在上面",
    "我们买好的",
]


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    return Teacher(str(tiny_bert))


@pytest.fixture
def weighter():
    return Weighter(table(我们=2.0, 公园=6.0, 今天=3.0), eps=1.0)


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return p


def run(corpus, out, teacher, weighter, **kw):
    pooling = kw.pop("pooling", PoolingSettings("idf", -1, "query: ", 64))
    kw.setdefault("chunk_size", 4)
    kw.setdefault("batch_size", 3)
    return teacher_embed([str(corpus)], out, teacher, weighter, pooling, **kw)


def read_all(path):
    with TeacherFile(path) as tf:
        s, v, w = tf.read(0, len(tf))
        return s, v, w, tf.f["line"][:], tf.settings, tf.mean


def test_vector_equals_hand_computation(tiny_bert, teacher, weighter, corpus, tmp_path):
    out = tmp_path / "t.h5"
    stats = run(corpus, out, teacher, weighter)
    assert (stats.rows, stats.empty, stats.lines) == (10, 2, 12)
    sents, vecs, weights, lines, settings, mean = read_all(out)
    assert lines.tolist() == [0, 2, 3, 5, 6, 7, 8, 9, 10, 11]  # input order, empties skipped
    assert sents[1] == "今天天气很好,我们去散步!"
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = BertModel.from_pretrained(tiny_bert, add_pooling_layer=False).eval()
    for i in (0, 1, 2, 4):
        text = sents[i]
        cw = weighter.char_weights(text)
        np.testing.assert_allclose(weights[i], cw)
        enc = tok("query: " + text, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0].numpy()  # (T, H): [CLS] query : chars [SEP]
        chars = [
            j
            for j, t in enumerate(tok.convert_ids_to_tokens(enc["input_ids"][0]))
            if j >= 3 and t not in ("[SEP]",)
        ]
        nonspace = [c for c in text if c != " "]  # the WordPiece tokenizer drops spaces
        assert len(chars) == len(nonspace)
        cw_ns = np.array([w for c, w in zip(text, cw, strict=True) if c != " "])
        expected = (cw_ns[:, None] * h[chars]).sum(0)
        np.testing.assert_allclose(vecs[i], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean, vecs.mean(0), rtol=1e-5, atol=1e-6)
    assert settings["prefix"] == "query: " and settings["eps"] == 1.0
    assert settings["idf_sha256"] == weighter.idf.sha256 and settings["dim"] == 16


def test_mean_and_cls_pooling(teacher):
    texts = ["我们去公园", "你好"]
    mean, _ = teacher.embed(texts, None, PoolingSettings("mean", -1, "", 64))
    cls, _ = teacher.embed(texts, None, PoolingSettings("cls", -1, "", 64))
    enc = teacher.tokenizer(texts[1], return_tensors="pt")
    with torch.no_grad():
        h = teacher.model(**enc).last_hidden_state[0]
    np.testing.assert_allclose(mean[1], h.mean(0).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cls[1], h[0].numpy(), rtol=1e-4, atol=1e-5)
    layer0, _ = teacher.embed(texts, None, PoolingSettings("cls", 0, "", 64))
    assert not np.allclose(layer0, cls)


def test_prefix_tokens_weigh_nothing_and_truncation(teacher, weighter):
    text = "我们去公园今天天气很好"
    cw = weighter.char_weights(text)
    with_prefix, _ = teacher.embed([text], [cw], PoolingSettings("idf", -1, "query: ", 64))
    # same text, but the prefix changes context only: weights on prefix tokens are 0, so
    # zeroing the model's prefix contribution is checked through truncation instead
    short, truncated = teacher.embed([text], [cw], PoolingSettings("idf", -1, "query: ", 8))
    assert truncated == 1
    assert not np.allclose(with_prefix, short)
    _, none = teacher.embed([text], [cw], PoolingSettings("idf", -1, "query: ", 64))
    assert none == 0


def test_kill_and_resume_equals_clean_run(teacher, weighter, corpus, tmp_path):
    clean = tmp_path / "clean.h5"
    run(corpus, clean, teacher, weighter)
    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        run(corpus, out, teacher, weighter, fail_after_chunks=2)
    assert not out.exists() and partial_path(out).exists()
    with h5py.File(partial_path(out)) as f:
        assert f.attrs["lines_done"] == 8
    stats = run(corpus, out, teacher, weighter)
    assert stats.resumed_from == 8
    a, b = read_all(clean), read_all(out)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[3], b[3])
    assert not partial_path(out).exists()
    again = run(corpus, out, teacher, weighter)
    assert again.already_complete


def test_other_settings_refused(teacher, weighter, corpus, tmp_path):
    out = tmp_path / "t.h5"
    run(corpus, out, teacher, weighter)
    other = Weighter(weighter.idf, eps=0.5)
    with pytest.raises(StoreError, match="other settings .*eps: 1.0, now 0.5.*--overwrite"):
        run(corpus, out, teacher, other)
    stats = run(corpus, out, teacher, other, overwrite=True)
    assert stats.rows == 10 and read_all(out)[4]["eps"] == 0.5


def test_limit_then_extend(teacher, weighter, corpus, tmp_path):
    out = tmp_path / "t.h5"
    assert run(corpus, out, teacher, weighter, limit=8).rows == 6
    stats = run(corpus, out, teacher, weighter)
    assert stats.resumed_from == 8 and stats.rows == 10
    full = tmp_path / "full.h5"
    run(corpus, full, teacher, weighter)
    np.testing.assert_array_equal(read_all(out)[1], read_all(full)[1])


def test_shards_merged_equal_single_run(teacher, weighter, corpus, tmp_path):
    single = tmp_path / "single.h5"
    run(corpus, single, teacher, weighter)
    parts = []
    for i in range(2):
        p = tmp_path / f"part{i}.h5"
        run(corpus, p, teacher, weighter, shard=f"{i}/2")
        parts.append(str(p))
    merged = tmp_path / "merged.h5"
    assert merge_parts(parts, merged) == 10
    a, b = read_all(single), read_all(merged)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[3], b[3])
    with pytest.raises(StoreError, match=r"shards \[1\] of 2 are missing"):
        merge_parts(parts[:1], tmp_path / "bad.h5")


def test_bad_inputs(teacher, weighter, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(InputError, match="no non-empty sentences"):
        run(empty, tmp_path / "t.h5", teacher, weighter)
    assert not (tmp_path / "t.h5").exists()
    with pytest.raises(InputError, match="no such file"):
        run(tmp_path / "missing.txt", tmp_path / "t.h5", teacher, weighter)
    with pytest.raises(InputError, match="expected I/N"):
        run(empty, tmp_path / "t.h5", teacher, weighter, shard="x")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        TeacherFile(bad)


def test_teacher_config_hash_ignores_version_noise():
    from ltd_bert.teacher.model import config_hash

    base = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 12, "vocab_size": 9}
    noisy = {**base, "transformers_version": "5.24.0", "dtype": "float32", "use_cache": True}
    assert config_hash(noisy) == config_hash(base)
    assert config_hash({**base, "transformers_version": "4.40.0"}) == config_hash(base)
    assert config_hash({**base, "hidden_size": 768}) != config_hash(base)
    assert len(config_hash(base)) == 16


@pytest.mark.precision
def test_auto_precision_keeps_the_earlier_files_type(tiny_bert, corpus, tmp_path, monkeypatch):
    """`--precision auto` (bf16 on an AMX CPU) extends a file in the type it was made with;
    LTD_PRECISION=bf16 where bf16 is not native is refused in one line."""
    from click.testing import CliRunner

    from ltd_bert.cli import cli
    from ltd_bert.teacher.embed import earlier_precision

    idf = tmp_path / "idf.tsv"
    idf.write_text("我们\t2.0\n公园\t6.0\n", encoding="utf-8")
    out = tmp_path / "t.h5"
    base = ["teacher-embed", "-i", str(corpus), "--idf", str(idf), "--teacher", str(tiny_bert)]
    base += ["-o", str(out), "-q"]
    assert earlier_precision(out) is None
    first = CliRunner().invoke(cli, [*base, "--limit", "4", "--precision", "fp32"])
    assert first.exit_code == 0, first.output
    assert earlier_precision(out) == "fp32"
    monkeypatch.setenv("LTD_PRECISION", "bf16")  # what auto would choose on an AMX CPU
    more = CliRunner().invoke(cli, base)
    assert more.exit_code == 0, more.output
    assert read_all(out)[4]["precision"] == "fp32" and len(read_all(out)[0]) == 10
    again = CliRunner().invoke(cli, [*base, "--overwrite", "--limit", "4"])
    if not native_bf16():
        assert_one_error(again, "LTD_PRECISION=bf16: this CPU does not multiply bf16 natively")
        return
    assert again.exit_code == 0, again.output
    assert earlier_precision(out) == "bf16"
