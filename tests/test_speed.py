from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SAMPLE_CORPUS
from safetensors.torch import load_file, save_file

from ltd_bert.cli import cli
from ltd_bert.common.batching import length_batches
from ltd_bert.common.errors import ModelError
from ltd_bert.student.export import ExportableStudent, OnnxStudent, export_onnx
from ltd_bert.student.model import (
    BiLSTMStudent,
    Student,
    StudentConfig,
    batch_tensors,
    build_vocab,
    random_batch,
    save_model_folder,
)
from ltd_bert.student.quantize import (
    QuantizedStudent,
    is_quantized,
    load_any,
    load_quantized,
    quantize_model,
    quantize_rows,
)

LONG = "今天天气很好，我们一起去北京的公园散步，然后在家附近的店里买了很多东西。" * 3
SENTENCES = ["我们", "", "今天天气很好", LONG, "爱", "他说：ABC 是 abc 吗？", "长" * 300]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors here are tiny: extra threads only wait on each other (slow on a busy box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder as `ltd train` writes it, made directly (no teacher, no training):
    the sample corpus's characters, embedding 32, hidden 24, projection 48 → 16, PyTorch's
    random initialisation, and a small IDF table (so loading takes milliseconds)."""
    folder = tmp_path_factory.mktemp("speed")
    idf = folder / "idf.tsv"
    words = {"我们": 2.0, "今天": 3.0, "天气": 5.0, "公园": 7.0, "散步": 8.0, "北京": 6.0}
    idf.write_text(
        "# unseen: 6.0\n" + "".join(f"{w}\t{v}\n" for w, v in words.items()), encoding="utf-8"
    )
    vocab = build_vocab(SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:2000])
    torch.manual_seed(0)
    cfg = StudentConfig(len(vocab), embedding_dim=32, hidden_size=24, output_dim=16)
    model = BiLSTMStudent(cfg).eval()
    model.mean.normal_()
    meta = {"eps": 1.0, "max_chars": 1024, "centered": True}
    out = folder / "model"
    metrics = folder / "metrics.jsonl"
    metrics.write_text('{"step": 1, "val_cos": 0.5}\n', encoding="utf-8")
    save_model_folder(out, model, vocab, str(idf), meta, extra_files=[metrics])
    return out


@pytest.fixture(scope="module")
def student(trained):
    return Student.load(trained, precision="fp32")  # compared with ONNX to 1e-4


@pytest.fixture(scope="module")
def int8(trained, tmp_path_factory):
    """(folder, quantize_model's result, the loaded QuantizedStudent)."""
    out = tmp_path_factory.mktemp("speed") / "int8"
    info = quantize_model(trained, out)
    return out, info, load_quantized(out)


@pytest.fixture(scope="module")
def onnx_model(trained, tmp_path_factory):
    """(ONNX file, export_onnx's result, OnnxStudent on one thread)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("speed") / "m.onnx"
    info = export_onnx(trained, out)
    return out, info, OnnxStudent.load(trained, out, threads=1)


def sample_lines(n=60):
    return SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[-n:] + SENTENCES


def cosines(a, b):
    keep = np.linalg.norm(a, axis=1) > 0
    a, b = a[keep], b[keep]
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- the exportable formulation ---------------------------------------------------------


@pytest.mark.parametrize(
    "layers,hidden,output", [(1, 5, 7), (2, 4, 8), (3, 6, 12)], ids=["1-proj", "2-noproj", "3"]
)
def test_exportable_equals_packed(layers, hidden, output):
    torch.manual_seed(layers)
    cfg = StudentConfig(
        30, embedding_dim=6, hidden_size=hidden, num_layers=layers, output_dim=output
    )
    model = BiLSTMStudent(cfg).eval()
    graph = ExportableStudent(model)
    ids, lengths, w = random_batch(30, n=9, max_len=13, seed=layers)
    lengths[3] = 1
    with torch.no_grad():
        torch.testing.assert_close(
            graph.token_states(ids, lengths), model.token_states(ids, lengths), rtol=0, atol=1e-5
        )
        torch.testing.assert_close(
            graph(ids, lengths, w), model(ids, lengths, w), rtol=0, atol=1e-5
        )


def test_plain_bidirectional_lstm_would_be_wrong():
    """Why the re-formulation exists: over padded input the backward direction differs."""
    torch.manual_seed(0)
    model = BiLSTMStudent(StudentConfig(30, embedding_dim=6, hidden_size=5, output_dim=7)).eval()
    ids, lengths, w = random_batch(30, n=6, max_len=10, seed=5)
    with torch.no_grad():
        naive = model.proj(torch.bmm(w.unsqueeze(1), model.lstm(model.embedding(ids))[0])[:, 0])
        exact = model(ids, lengths, w)
    assert (naive - exact).abs()[lengths < 10].max() > 1e-3


# --- ONNX ---------------------------------------------------------------------------------


def test_onnx_equals_pytorch(student, onnx_model):
    _, result, onnx_student = onnx_model
    assert result["max_abs_diff"] < 1e-4 and result["opset"] >= 14
    assert onnx_student.dim == student.dim == 16

    # One padded batch, in input order, short and long sentences mixed.
    texts, weights = student.prepare([s for s in SENTENCES if s])
    ids, lengths, w = batch_tensors(texts, weights, student.index, student.max_chars)
    assert len(set(lengths.tolist())) == len(texts) and lengths.max() == 300
    feed = {"ids": ids.numpy(), "lengths": lengths.numpy(), "weights": w.numpy()}
    got = onnx_student.model.session.run(["vectors"], feed)[0]
    with torch.no_grad():
        expected = student.model(ids, lengths, w).numpy()
    assert np.abs(got - expected).max() < 1e-4

    # Through encode: sorted length batches of another size, empty line, options.
    lines = sample_lines()
    assert np.abs(onnx_student.encode(lines, batch_size=7) - student.encode(lines)).max() < 1e-4
    a = onnx_student.encode(SENTENCES, normalize=True, space="teacher")
    b = student.encode(SENTENCES, normalize=True, space="teacher")
    assert np.abs(a - b).max() < 1e-4 and not a[1].any()


def test_length_batches():
    lengths = [100, 3, 90, 80, 79, 5, 4, 4, 4]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    got = list(length_batches(order, lengths, batch_size=2))
    assert got == [[0, 2], [3, 4], [5, 6], [7, 8], [1]]
    assert sorted(i for b in got for i in b) == list(range(len(lengths)))


def test_onnx_refuses_a_stale_export(trained, onnx_model, tmp_path):
    path, _, onnx_student = onnx_model
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    state = load_file(str(other / "model.safetensors"))
    state["mean"] = state["mean"] + 1
    save_file(state, str(other / "model.safetensors"))
    with pytest.raises(ModelError, match="exported from a different model"):
        OnnxStudent.load(other, path)
    with pytest.raises(ModelError, match="no such ONNX file"):
        OnnxStudent.load(other)
    with pytest.raises(ModelError, match="cannot be saved"):
        onnx_student.save(tmp_path / "x")


# --- int8 ---------------------------------------------------------------------------------


def test_quantize_rows():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -3.0]])
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8 and q.tolist() == [[64, -127, 32], [0, 0, 0], [127, 42, -127]]
    torch.testing.assert_close(scale, torch.tensor([1 / 127, 1.0, 3 / 127]))
    assert (q.float() * scale[:, None] - w).abs().max() <= scale.max() / 2


def test_quantize_round_trip(trained, student, int8, tmp_path):
    out, info, q = int8
    size = (trained / "model.safetensors").stat().st_size
    assert info["bytes_int8"] == (out / "model.safetensors").stat().st_size
    # the float folder stores float16 (2 bytes a weight), int8 1 byte plus a scale per row
    assert info["ratio"] == size / info["bytes_int8"] >= 1.5
    assert info["cosine"] > 0.99
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantized"] == "int8" and cfg["student"]["hidden_size"] == 24
    assert (out / "metrics.jsonl").is_file()
    stored = load_file(str(out / "model.safetensors"))
    assert stored["embedding.weight"].dtype == torch.int8
    assert stored["lstm.weight_hh_l0_reverse"].dtype == torch.int8
    assert stored["proj.weight.scale"].dtype == torch.float32
    assert (
        stored["mean"].dtype == torch.float32 and stored["lstm.bias_ih_l0"].dtype == torch.float32
    )

    assert isinstance(q, QuantizedStudent) and is_quantized(out) and not is_quantized(trained)
    assert q.model.embedding.weight.dtype == torch.int8  # stays int8 in memory
    # The runtime modules hold exactly the stored integers.
    packed = q.model.lstm._weight_bias()["weight"]["weight_ih_l0_reverse"]
    assert torch.equal(packed.int_repr(), stored["lstm.weight_ih_l0_reverse"])
    assert torch.equal(q.model.proj.weight().int_repr(), stored["proj.weight"])

    lines = sample_lines()
    a, b = student.encode(lines), q.encode(lines)
    assert cosines(a, b).min() > 0.99
    assert not b[lines.index("")].any() and b.shape == a.shape
    np.testing.assert_allclose(q.mean, student.mean)

    q.save(tmp_path / "again")  # saving an int8 student writes the same file
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        out / "model.safetensors"
    ).read_bytes()
    again = load_any(tmp_path / "again")
    assert isinstance(again, QuantizedStudent)
    np.testing.assert_array_equal(again.encode(lines), b)


def test_student_load_delegates_int8(int8):
    out, _, q = int8
    try:
        s = Student.load(out)
    except ModelError:
        pytest.skip(
            "Student.load does not delegate int8 folders yet (see ltd_bert/student/quantize.py)"
        )
    assert isinstance(s, QuantizedStudent)
    result = CliRunner().invoke(cli, ["encode", "-", "-m", str(out)], input="你好\n")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        json.loads(result.output)["vector"], q.encode(["你好"])[0], rtol=1e-5, atol=1e-6
    )


def test_student_load_dispatches_on_the_folder(trained, int8, onnx_model, tmp_path):
    """One way to load any model folder: Student.load picks the loader class."""
    assert Student.loader_for(trained) is Student
    assert type(Student.load(trained)) is Student
    assert Student.loader_for(int8[0]) is QuantizedStudent
    assert isinstance(Student.load(int8[0], runtime="torch"), QuantizedStudent)
    assert Student.loader_for(trained, runtime="onnx") is OnnxStudent
    file, _, ref = onnx_model
    folder = tmp_path / "with_onnx"
    shutil.copytree(trained, folder)
    shutil.copyfile(file, folder / "model.onnx")
    assert type(Student.load(folder)) is Student  # PyTorch unless ONNX is asked for
    lines = sample_lines(20)
    for s in (
        Student.load(trained, runtime="onnx", onnx_path=file, threads=1),
        Student.load(folder, runtime="onnx"),
        Student.load(folder / "model.onnx", threads=1),
    ):
        assert isinstance(s, OnnxStudent)
        np.testing.assert_allclose(s.encode(lines), ref.encode(lines), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="runtime"):
        Student.load(trained, runtime="tensorrt")
    with pytest.raises(TypeError, match="unexpected options"):
        Student.load(trained, threads=1)


def test_quantize_errors(trained, int8, tmp_path):
    out = int8[0]
    with pytest.raises(ModelError, match="already int8"):
        quantize_model(out, tmp_path / "twice")
    with pytest.raises(ModelError, match="must differ"):
        quantize_model(trained, trained)
    newer = tmp_path / "newer"
    shutil.copytree(out, newer)
    cfg = json.loads((newer / "config.json").read_text())
    cfg["quantized"] = "int4"
    (newer / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="upgrade ltd-bert"):
        load_quantized(newer)
    with pytest.raises(ModelError, match="no such model folder"):
        load_quantized(tmp_path / "nope")
    with pytest.raises(ModelError, match="not an int8 model folder"):
        load_quantized(trained)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_quantize_and_export(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    run = CliRunner().invoke

    result = run(cli, ["quantize", str(model)])
    assert result.exit_code == 0, result.output
    assert "smaller" in result.output and (tmp_path / "model-int8" / "config.json").is_file()
    result = run(cli, ["quantize", str(tmp_path / "model-int8"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and "already int8" in result.output
    assert len(result.output.strip().splitlines()) == 1

    result = run(cli, ["export", str(model)])
    assert result.exit_code == 0, result.output
    assert "max |onnxruntime - PyTorch|" in result.output and (model / "model.onnx").is_file()
    result = run(cli, ["export", str(tmp_path / "model-int8")])
    assert result.exit_code == 1 and "no ONNX export" in result.output
    result = run(cli, ["export", str(model), "--opset", "13"])
    assert result.exit_code == 2


@pytest.mark.parametrize("command", ["quantize", "export"])
def test_cli_missing_model_folder(command, tmp_path):
    result = CliRunner().invoke(cli, [command, str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: {tmp_path / 'nope'}: no such model folder (train one with `ltd train`)\n"
    )
    result = CliRunner().invoke(cli, [command, "-h"])
    assert result.exit_code == 0 and "MODEL_DIR" in result.output
