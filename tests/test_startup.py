"""A fast start (docs/speed.md): the torch-free float32 runtime (`LightStudent`) gives the
vectors of `Student`, the command line's short requests import neither torch nor
transformers, the parsed IDF table is cached, and models load by their shipped name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_one_error

from ltd_bert.cli import cli
from ltd_bert.common.errors import ModelError
from ltd_bert.models import default_model_dir, model_path, shipped_names
from ltd_bert.runtime.light import LightStudent
from ltd_bert.student.model import BiLSTMStudent, Student, StudentConfig, save_model_folder

SENTENCES = [
    "今天天气很好",
    "天气不错",
    "",
    "。。",
    "iPhone 15 的价格是 5999 元。",
    "如何学习编程？" * 30,
]


@pytest.fixture(scope="module")
def shipped():
    return Student.load(precision="fp32"), LightStudent.load()


@pytest.mark.parametrize("space", ["similarity", "teacher", "centred"])
def test_light_matches_student(shipped, space):
    student, _ = shipped
    light = LightStudent.load()  # fresh: not folded yet
    want = student.encode(SENTENCES, space=space, normalize=space == "teacher")
    got = light.encode(SENTENCES, space=space, normalize=space == "teacher")
    assert light._table is None
    assert np.abs(got - want).max() < 1e-5
    light.fold()  # the per-character gate table of the first layer
    assert (
        np.abs(light.encode(SENTENCES, space=space) - student.encode(SENTENCES, space=space)).max()
        < 1e-5
    )


def test_light_folds_after_enough_characters(shipped):
    _, light = shipped
    light.encode(["字" * 50] * (len(light.vocab) // 50 + 1))
    assert light._table is not None


def test_light_two_layers_no_projection_unsorted_batch(tiny_idf, tmp_path):
    torch.manual_seed(0)
    vocab = ["<pad>", "<unk>", *"今天气很好不错的是"]
    config = StudentConfig(len(vocab), embedding_dim=8, hidden_size=6, num_layers=2, output_dim=12)
    model = BiLSTMStudent(config).eval()
    with torch.no_grad():
        model.mean.normal_()
    save_model_folder(tmp_path / "m", model, vocab, str(tiny_idf), {"eps": 1.0})
    student = Student.load(tmp_path / "m", precision="fp32")
    light = LightStudent.load(tmp_path / "m")
    sents = ["今天", "天气很好", "不错的天气是今天很好", "好"]
    assert np.abs(light.encode(sents) - student.encode(sents)).max() < 1e-5
    # rows in any order (forward sorts them longest first and back)
    from ltd_bert.student.model import batch_tensors

    texts, weights = student.prepare(sents)
    ids, lengths, w = batch_tensors(texts, weights, student.index, 100)
    with torch.inference_mode():
        want = student.model(ids, lengths, w).numpy()
    assert np.abs(light.forward(ids.numpy(), lengths.numpy(), w.numpy()) - want).max() < 1e-5


def test_light_refuses_int8(tmp_path):
    from ltd_bert.student.quantize import quantize_model

    quantize_model(default_model_dir(), tmp_path / "q")
    assert not LightStudent.can_load(tmp_path / "q")
    with pytest.raises(ModelError, match="int8 model folder"):
        LightStudent.load(tmp_path / "q")


HEAVY = ("torch", "transformers", "onnxruntime", "h5py")


def _run_cli(args: list[str], stdin: str = "") -> tuple[str, list[str]]:
    """Run the command line in a fresh interpreter: its output and the heavy modules it
    imported."""
    code = (
        "import sys\n"
        "from ltd_bert.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "finally:\n"
        f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "    print('HEAVY', ','.join(heavy), file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    heavy = out.stderr.rsplit("HEAVY", 1)[1].strip()
    return out.stdout, [m for m in heavy.split(",") if m]


def test_similarity_and_short_encode_import_neither_torch_nor_transformers(tmp_path):
    out, heavy = _run_cli(["--workdir", str(tmp_path), "similarity", "今天天气很好", "天气不错"])
    assert float(out) > 0.5 and heavy == []
    out, heavy = _run_cli(["--workdir", str(tmp_path), "encode", "-"], stdin="今天天气很好\n")
    assert len(json.loads(out)["vector"]) == 384 and heavy == []
    vec = np.array(json.loads(out)["vector"])
    want = Student.load(precision="fp32").encode(["今天天气很好"])[0]
    assert np.abs(vec - want).max() < 1e-5  # (the output's 6 decimals)


def test_idf_table_is_cached(tmp_path, monkeypatch):
    from ltd_bert.text import idf as idf_module

    monkeypatch.setenv("LTD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(idf_module, "CACHE_MIN_BYTES", 0)
    src = tmp_path / "idf.tsv"
    src.write_text("# unseen: median idf = 2.0\n天气\t3.5\n今天\t1.25\n", encoding="utf-8")
    first = idf_module.load_idf(src)
    cached = list((tmp_path / "home" / "idf").iterdir())
    assert len(cached) == 1
    second = idf_module.load_idf(src)
    assert (second.idf, second.default, second.sha256, second.source) == (
        first.idf,
        first.default,
        first.sha256,
        str(src),
    )
    cached[0].write_bytes(b"not marshal")  # a damaged cache is parsed again
    assert idf_module.load_idf(src).idf == first.idf
    src.write_text("天气\t1.0\n", encoding="utf-8")  # another file: another key
    assert idf_module.load_idf(src).idf == {"天气": 1.0}


def test_models_by_name(tmp_path, monkeypatch):
    assert "zh-small" in shipped_names()
    assert model_path() == model_path("zh-small") == default_model_dir()
    assert type(Student.load()) is Student
    assert isinstance(Student.load("zh-small", runtime="numpy"), LightStudent)
    with pytest.raises(ModelError, match=r"nope: .*shipped: zh-small"):
        Student.load("nope")
    # a path that exists wins over the name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zh-small").mkdir()
    assert model_path("zh-small") == Path("zh-small")
    with pytest.raises(ModelError, match="missing config.json"):
        Student.load("zh-small")


def test_cli_model_by_name(tmp_path):
    run = CliRunner().invoke
    result = run(cli, ["--workdir", str(tmp_path), "similarity", "-m", "zh-small", "你好", "您好"])
    assert result.exit_code == 0, result.output
    result = run(cli, ["--workdir", str(tmp_path), "encode", "-", "-m", "nope"], input="你好\n")
    assert_one_error(result, "nope: no such model folder", "shipped: zh-small")


def test_lazy_jieba_dictionary_cuts_like_jieba(tmp_path, monkeypatch):
    import jieba
    from conftest import SAMPLE_CORPUS

    from ltd_bert.text import segment

    monkeypatch.setenv("LTD_HOME", str(tmp_path))
    full = jieba.Tokenizer()
    assert not segment.start_lazily(full)  # no sqlite copy yet
    full.initialize()
    segment.write_dictionary_db(full, segment._dictionary_db())
    lazy = jieba.Tokenizer()
    assert segment.start_lazily(lazy) and isinstance(lazy.FREQ, segment.LazyFreq)
    monkeypatch.setattr(segment, "LAZY_LOOKUPS", 2000)
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:300]
    first = lines[:3]
    assert [lazy.lcut(s) for s in first] == [full.lcut(s) for s in first]
    assert isinstance(lazy.FREQ, segment.LazyFreq)  # a few sentences: still lazy
    assert [lazy.lcut(s) for s in lines] == [full.lcut(s) for s in lines]
    assert isinstance(lazy.FREQ, dict) and lazy.total == full.total  # then loaded whole
