"""The float32 student's inference path (`student/fused.py`): both directions in one loop,
the first layer folded, bf16 recurrent products; and `ltd encode --workers/--runtime`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import native_bf16

from ltd_bert.cli import cli
from ltd_bert.common import cpu
from ltd_bert.student import fused
from ltd_bert.student.fused import FusedBiLSTM, resolve_precision, reversed_within
from ltd_bert.student.model import BiLSTMStudent, Student, StudentConfig, save_model_folder

SENTS = ["今天", "天气很好", "不错的天气是今天很好", "好", "很好的天气", "是"]


def test_reversed_within_each_length():
    a = np.array([[1, 2, 3, 4], [5, 6, 0, 0], [7, 0, 0, 0]])
    got = reversed_within(a, np.array([4, 2, 1]))
    assert got.tolist() == [[4, 3, 2, 1], [6, 5, 0, 0], [7, 0, 0, 0]]
    b = np.arange(12, dtype=np.float32).reshape(1, 3, 4)  # trailing dimensions move along
    assert reversed_within(b, np.array([2]), fill=-1).tolist() == [
        [[4, 5, 6, 7], [0, 1, 2, 3], [-1, -1, -1, -1]]
    ]


@pytest.mark.precision
def test_precision_choice(monkeypatch):
    monkeypatch.delenv(cpu.ENV, raising=False)  # the suite runs with LTD_PRECISION=fp32
    monkeypatch.setattr(cpu, "has_amx", lambda: False)
    monkeypatch.setattr(fused, "has_int8", lambda: True)
    assert resolve_precision("auto") == "int8"
    monkeypatch.setattr(fused, "has_int8", lambda: False)
    assert resolve_precision("auto") == "fp32"
    with pytest.raises(cpu.PrecisionError, match="--precision int8: this PyTorch has no FBGEMM"):
        resolve_precision("int8")
    monkeypatch.setattr(cpu, "has_amx", lambda: True)
    assert resolve_precision("auto") == "bf16"
    assert cpu.auto_precision("cuda:0") == "fp32"
    monkeypatch.setattr(fused, "has_int8", lambda: True)
    monkeypatch.setenv(cpu.ENV, "fp32")
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(cpu, "has_amx", lambda: False)
    assert resolve_precision("auto") == "fp32"  # LTD_PRECISION decides auto
    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, int8"):
        resolve_precision("int4")


@pytest.mark.precision
def test_auto_keeps_fp32_for_a_small_lstm(monkeypatch):
    monkeypatch.delenv(cpu.ENV, raising=False)
    monkeypatch.setattr(fused, "has_int8", lambda: True)
    monkeypatch.setattr(cpu, "has_amx", lambda: False)
    assert [resolve_precision("auto", h) for h in (64, 255, 256, 384)] == [
        "fp32",
        "fp32",
        "int8",
        "int8",
    ]
    assert resolve_precision("int8", 64) == "int8"  # asked for, not chosen
    monkeypatch.setattr(cpu, "has_amx", lambda: True)  # as on a CPU with native bf16
    monkeypatch.setattr(cpu, "require_bf16", lambda *a, **k: None)
    monkeypatch.setattr(fused, "require_bf16", lambda *a, **k: None)
    assert [resolve_precision("auto", h) for h in (64, 127, 128)] == ["fp32", "fp32", "bf16"]
    assert resolve_precision("bf16", 64) == "bf16"
    monkeypatch.setenv(cpu.ENV, "bf16")
    assert resolve_precision("auto", 64) == "bf16"  # LTD_PRECISION decides auto


@pytest.mark.precision
@pytest.mark.skipif(not fused.has_int8(), reason="no FBGEMM in this PyTorch")
def test_fused_int8_keeps_the_fp32_vectors():
    """int8 recurrent products: the same vectors to a cosine of 0.9999 (long rows too)."""
    model = _model(1, 32, 24, seed=3)
    rng = np.random.default_rng(0)
    lengths = np.array([300, 40, 7, 1])
    ids = rng.integers(2, 12, (4, 300))
    ids[np.arange(300) >= lengths[:, None]] = 0
    w = rng.random((4, 300)).astype(np.float32) * (ids > 0)
    w /= w.sum(1, keepdims=True)
    ref = FusedBiLSTM(model, "fp32").forward(ids, lengths, w)
    got = FusedBiLSTM(model, "int8").forward(ids, lengths, w)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.9999 and not np.array_equal(ref, got)


def _model(layers: int, hidden: int, output_dim: int, seed: int = 0) -> BiLSTMStudent:
    torch.manual_seed(seed)
    config = StudentConfig(
        12, embedding_dim=8, hidden_size=hidden, num_layers=layers, output_dim=output_dim
    )
    return BiLSTMStudent(config).eval()


@pytest.mark.precision
@pytest.mark.parametrize(("layers", "hidden", "output_dim"), [(1, 6, 10), (2, 5, 10), (1, 5, 10)])
def test_fused_fp32_equals_nn_lstm(layers, hidden, output_dim):
    model = _model(layers, hidden, output_dim)
    ids = torch.tensor([[2, 3, 4, 0, 0], [5, 6, 7, 8, 9], [3, 0, 0, 0, 0], [4, 4, 5, 6, 0]])
    lengths = torch.tensor([3, 5, 1, 4])  # unsorted on purpose
    w = torch.rand(4, 5) * (torch.arange(5)[None, :] < lengths[:, None])
    with torch.inference_mode():
        want = model(ids, lengths, w).numpy()
    got = FusedBiLSTM(model, "fp32").forward(ids.numpy(), lengths.numpy(), w.numpy())
    assert got.shape == (4, output_dim)
    assert np.abs(got - want).max() < 1e-5
    if not native_bf16():  # refused: bf16 would only be emulated
        with pytest.raises(cpu.PrecisionError):
            FusedBiLSTM(model, "bf16")
        return
    bf = FusedBiLSTM(model, "bf16").forward(ids.numpy(), lengths.numpy(), w.numpy())
    cos = (bf * want).sum(1) / np.linalg.norm(bf, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.999
    assert np.abs(bf - want).max() > 0  # it did round


def _fused_and_plain(tiny_idf, folder, seed: int) -> tuple[Student, Student]:
    """A small random model folder loaded twice in fp32: through the fused loop, and through
    the module's own forward."""
    vocab = ["<pad>", "<unk>", *"今天气很好不错的是"]
    torch.manual_seed(seed)
    model = BiLSTMStudent(StudentConfig(len(vocab), 8, 6, output_dim=12)).eval()
    save_model_folder(folder, model, vocab, str(tiny_idf), {"eps": 1.0})
    student = Student.load(folder, precision="fp32")
    plain = Student.load(folder, precision="fp32")
    plain.fused = False  # the module's forward (torch.lstm per direction)
    return student, plain


@pytest.mark.precision
def test_student_uses_fused_and_follows_weight_changes(tiny_idf, tmp_path):
    student, plain = _fused_and_plain(tiny_idf, tmp_path / "m", seed=1)
    assert student.precision == "fp32"
    assert np.abs(student.encode(SENTS) - plain.encode(SENTS)).max() < 1e-5
    first = student.fused_network()
    assert student.fused_network() is first  # prepared once
    with torch.no_grad():
        student.model.lstm.weight_hh_l0.mul_(0.5)  # as a training step would, in place
        plain.model.lstm.weight_hh_l0.mul_(0.5)
    assert student.fused_network() is not first
    assert np.abs(student.encode(SENTS) - plain.encode(SENTS)).max() < 1e-5
    if native_bf16():
        assert Student.load(tmp_path / "m", precision="bf16").precision == "bf16"
    else:
        with pytest.raises(cpu.PrecisionError, match="--precision bf16: this CPU"):
            Student.load(tmp_path / "m", precision="bf16")


def test_empty_and_long_rows(tiny_idf, tmp_path):
    student, plain = _fused_and_plain(tiny_idf, tmp_path / "m", seed=2)
    sents = ["", "今天天气很好" * 40, "好", "", "x"]
    got = student.encode(sents, space="centred")
    assert np.abs(got - plain.encode(sents, space="centred")).max() < 1e-5
    assert not got[0].any() and not got[3].any()


@pytest.fixture
def lines_file(tmp_path):
    path = tmp_path / "in.txt"
    lines = [SENTS[i % len(SENTS)] * (1 + i % 3) for i in range(40)]
    lines[7] = ""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_encode_workers_give_the_one_process_vectors(tiny_model, lines_file, tmp_path, monkeypatch):
    import ltd_bert.tasks.encode as encode_task

    monkeypatch.setattr(encode_task, "BLOCK", 7)  # several blocks, back in input order
    model, _ = tiny_model
    runner = CliRunner()
    base = ["encode", str(lines_file), "-m", str(model), "-q", "--precision", "fp32"]
    one = runner.invoke(cli, [*base, "--runtime", "torch", "-o", str(tmp_path / "a.npy")])
    assert one.exit_code == 0, one.output
    two = runner.invoke(cli, [*base, "--workers", "2", "-o", str(tmp_path / "b.npy")])
    assert two.exit_code == 0, two.output
    light = runner.invoke(cli, [*base, "--runtime", "numpy", "-o", str(tmp_path / "c.npy")])
    assert light.exit_code == 0, light.output
    a, b, c = (np.load(tmp_path / f"{x}.npy") for x in "abc")
    assert a.shape == (40, 16)
    assert np.abs(a - b).max() < 1e-6
    assert np.abs(a - c).max() < 1e-5
    assert not a[7].any()


def test_encode_workers_write_npy_rows_skipping_bad_lines(tiny_model, tmp_path, monkeypatch):
    """Workers write their rows into the .npy themselves; a skipped undecodable line leaves
    no gap (the file is trimmed to the lines encoded)."""
    import ltd_bert.tasks.encode as encode_task

    monkeypatch.setattr(encode_task, "BLOCK", 4)
    model, _ = tiny_model
    good = [SENTS[i % len(SENTS)] for i in range(11)]
    src = tmp_path / "in.txt"
    src.write_bytes(
        "\n".join(good[:5]).encode() + b"\n\xff\xfe\n" + "\n".join(good[5:]).encode() + b"\n"
    )
    (tmp_path / "good.txt").write_text("\n".join(good) + "\n", encoding="utf-8")
    base = ["encode", "-m", str(model), "-q", "--precision", "fp32", "--errors", "skip"]
    runner = CliRunner()
    two = runner.invoke(cli, [*base, str(src), "--workers", "2", "-o", str(tmp_path / "w.npy")])
    assert two.exit_code == 0, two.output
    one = runner.invoke(cli, [*base, str(tmp_path / "good.txt"), "-o", str(tmp_path / "o.npy")])
    assert one.exit_code == 0, one.output
    w, o = np.load(tmp_path / "w.npy"), np.load(tmp_path / "o.npy")
    assert w.shape == o.shape == (11, 16)
    assert np.abs(w - o).max() < 1e-6


def test_npy_rows_blocks_in_any_order_past_the_end_dropped(tmp_path, monkeypatch):
    """`NpyRows` writes blocks at their rows (any process, any order) into a file `np.load`
    reads; rows past the end are dropped; every block is dropped from the page cache once
    written (the hint only, the bytes stay)."""
    import os

    from ltd_bert.tasks.encode import NpyRows

    hints = []
    fadvise = getattr(os, "posix_fadvise", None)

    def record(fd, offset, length, advice):
        hints.append((offset, length))
        if fadvise:
            fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record, raising=False)
    path = str(tmp_path / "v.npy")
    made = NpyRows(path, 7, 3)
    a = np.arange(9, dtype=np.float64).reshape(3, 3)  # converted to float32
    b = -np.ones((6, 3), np.float32)  # rows 4..9: the last two dropped
    other = NpyRows(path)  # a worker's view of the same file
    other.write(4, b)
    made.write(0, a)
    assert (other.rows, other.dim, made.offset) == (7, 3, other.offset)
    other.close()
    made.close()
    got = np.load(path)
    assert got.dtype == np.float32
    assert got.tolist() == [*a.tolist(), [0.0] * 3, *([[-1.0] * 3] * 3)]
    off = made.offset
    # a write hints its own range (write-back starts) and the one before it (freed);
    # closing hints the last range written: here one block each, then each close
    assert hints == [(off + 48, 36), (off, 36), (off + 48, 36), (off, 36)]
    del hints[:]
    again = NpyRows(path)
    for row in (2, 4, 6):  # the last block keeps one row of two
        again.write(row, np.zeros((2, 3)))
    again.close()
    assert hints == [(off + 24, 24), (off + 48, 24), (off + 24, 24), (off + 72, 12)] + [
        (off + 48, 24),
        (off + 72, 12),
    ]
    assert not np.load(path)[2:].any()

    def refuse(*args):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", refuse, raising=False)  # advice is optional
    monkeypatch.delattr(os, "pwrite")  # Windows: a seek and a write
    last = NpyRows(path)
    last.write(5, np.full((2, 3), 7.0))
    last.close()
    assert np.load(path)[5:].tolist() == [[7.0] * 3] * 2 and not np.load(path)[2:5].any()


def test_encode_workers_forked(tiny_model, lines_file, tmp_path):
    """`ltd encode` in a fresh process (torch not imported yet) forks its workers from a
    model loaded once; the vectors are the one-process ones, in input order."""
    import subprocess
    import sys

    model, _ = tiny_model
    out = tmp_path / "f.npy"
    script = (
        "import sys, ltd_bert.tasks.encode as e\n"
        "assert e.can_fork(), 'fork expected'\n"
        "e.BLOCK = 7\n"
        "load, used = e.load_parent, []\n"
        "e.load_parent = lambda loader: used.append(load(loader)) or used[-1]\n"
        "from ltd_bert.cli import cli\n"
        "cli(sys.argv[1:], standalone_mode=False)\n"
        "assert used and used[0] is not None, 'not forked'\n"
    )
    args = ["encode", str(lines_file), "-m", str(model), "-q", "--precision", "fp32"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--workers", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr  # the pool's SIGTERM ends the workers quietly
    one = CliRunner().invoke(cli, [*args, "--runtime", "torch", "-o", str(tmp_path / "a.npy")])
    assert one.exit_code == 0, one.output
    a, b = np.load(tmp_path / "a.npy"), np.load(out)
    assert a.shape == b.shape == (40, 16)
    assert np.abs(a - b).max() < 1e-6


def test_encode_onnx_refuses_workers(tiny_model, lines_file):
    model, _ = tiny_model
    result = CliRunner().invoke(
        cli, ["encode", str(lines_file), "-m", str(model), "--onnx", "x.onnx", "--workers", "2"]
    )
    assert result.exit_code != 0
    assert "--onnx runs in one process" in result.output


@pytest.mark.parametrize("layers", [1, 2])
def test_padded_training_path_equals_packed_lstm(layers):
    """BiLSTMStudent runs each direction over the padded batch (linear time in training);
    its states equal nn.LSTM over packed sequences, gradients included."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = _model(layers, 6, 10, seed=3)
    ids = torch.tensor([[2, 3, 4, 0, 0], [5, 6, 7, 8, 9], [0, 0, 0, 0, 0], [4, 4, 5, 6, 0]])
    lengths = torch.tensor([3, 5, 0, 4])  # an empty row reads one PAD, as the packed model
    got = model.token_states(ids, lengths)
    x = model.embedding(ids)
    packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    want, _ = pad_packed_sequence(model.lstm(packed)[0], batch_first=True, total_length=5)
    assert torch.allclose(got, want, atol=1e-6)
    (g1,) = torch.autograd.grad(got.pow(2).sum(), model.lstm.weight_hh_l0)
    (g2,) = torch.autograd.grad(want.pow(2).sum(), model.lstm.weight_hh_l0)
    assert torch.allclose(g1, g2, atol=1e-5)


def test_char_parts_put_documents_apart():
    from conftest import tiny_train_config

    from ltd_bert.student.train import char_parts

    cfg = tiny_train_config(batch_chars=1000, max_chars=400)
    lengths = [20, 400, 30, 900, 25, 10]  # two documents among sentences (900 is cut to 400)
    parts = char_parts(list("abcdef"), lengths, cfg)
    assert parts == [["d", "b"], ["c", "e", "a", "f"]]  # longest first: 2 × 400, 4 × 30


def test_encode_segmenter_fast(tiny_model, lines_file, tmp_path):
    """--segmenter fast cuts with rjieba (these lines as jieba does): the same vectors, in
    one process and in workers; so does --segmenter rjieba on these lines."""
    model, _ = tiny_model
    runner = CliRunner()
    base = ["encode", str(lines_file), "-m", str(model), "-q", "--runtime", "torch"]
    for name, extra in (("ref", []), ("fast", ["--segmenter", "fast"])):
        result = runner.invoke(cli, [*base, *extra, "-o", str(tmp_path / f"{name}.npy")])
        assert result.exit_code == 0, result.output
    two = runner.invoke(
        cli, [*base, "--segmenter", "fast", "--workers", "2", "-o", str(tmp_path / "w.npy")]
    )
    assert two.exit_code == 0, two.output
    # rjieba's own cut: the same words on these lines (it differs on ~1 line in 100)
    rj = runner.invoke(cli, [*base, "--segmenter", "rjieba", "-o", str(tmp_path / "rj.npy")])
    assert rj.exit_code == 0, rj.output
    ref = np.load(tmp_path / "ref.npy")
    assert np.abs(np.load(tmp_path / "fast.npy") - ref).max() < 1e-6
    assert np.abs(np.load(tmp_path / "w.npy") - ref).max() < 1e-6
    assert np.abs(np.load(tmp_path / "rj.npy") - ref).max() < 1e-6
    student = Student.load(model, precision="fp32")
    student.use_segmenter("fast")
    assert student.weighter.segmenter == "fast"


def test_auto_workers(tmp_path, monkeypatch):
    """`--workers auto` (the default): one per core for more than one block, else one."""
    from ltd_bert.cli.encode import auto_workers
    from ltd_bert.tasks.encode import BLOCK

    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("句子\n" * (BLOCK + 1), encoding="utf-8")
    small.write_text("句子\n" * BLOCK, encoding="utf-8")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert auto_workers(str(big), False) == 3
    assert auto_workers(str(small), False) == 1
    assert auto_workers("-", False) == 1
    assert auto_workers(str(big), True) == 1  # --threads / --onnx: one process
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)), raising=False)
    assert auto_workers(str(big), False) == 8
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert auto_workers(str(big), False) == 1


def test_documents_make_blocks_by_characters(tmp_path, monkeypatch):
    """A block ends at BLOCK lines or BLOCK_CHARS characters: a few long documents are
    several blocks (for the workers), one document alone is one."""
    from ltd_bert.cli.encode import auto_workers
    from ltd_bert.common.textio import LineReader
    from ltd_bert.tasks import encode

    monkeypatch.setattr(encode, "BLOCK_CHARS", 10)
    docs = tmp_path / "docs.txt"
    docs.write_text("一二三四五六\n七八九十甲乙\n丙\n丁戊\n", encoding="utf-8")
    blocks = list(encode.line_blocks(LineReader([str(docs)])))
    assert blocks == [["一二三四五六", "七八九十甲乙"], ["丙", "丁戊"]]
    assert encode.more_than_one_block(str(docs))
    one = tmp_path / "one.txt"
    one.write_text("一二三四五六七八九十甲乙\n", encoding="utf-8")
    assert not encode.more_than_one_block(str(one))
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert auto_workers(str(docs), False) == 2 and auto_workers(str(one), False) == 1
    assert not encode.more_than_one_block("-")


def test_auto_runtime_follows_the_file_size(tiny_model, tmp_path, monkeypatch):
    """`--runtime auto`: numpy (no torch import) for small files and stdin, torch for files
    over SMALL_BYTES (SMALL_NETWORK_BYTES for a small LSTM, whose numpy loop also runs in
    workers) and whenever --precision is given."""
    from ltd_bert.tasks import encode

    seen = []

    def spy(student, sentences, output, *args, loader, **kw):  # the runtime chosen
        seen.append(loader.runtime)
        return 0, output

    monkeypatch.setattr(encode, "encode_file", spy)
    monkeypatch.setattr(encode, "SMALL_BYTES", 100)
    monkeypatch.setattr(encode, "SMALL_NETWORK_BYTES", 200)
    f = tmp_path / "s.txt"
    out = str(tmp_path / "o.npy")
    base = ["encode", str(f), "-m", str(tiny_model[0]), "-o", out, "--workers", "1"]
    # the tiny model's LSTM is small (< SMALL_HIDDEN units): numpy up to 200 bytes
    cases = (
        ("你好\n" * 5, [], "numpy"),  # 35 bytes
        ("你好\n" * 20, [], "numpy"),  # 140 bytes
        ("你好\n" * 20, ["--workers", "2"], "numpy"),  # in workers too
        ("你好\n" * 50, [], None),  # 350 bytes: torch
        ("你好\n" * 5, ["--precision", "fp32"], None),
    )
    for small_hidden in (encode.SMALL_HIDDEN, 1):  # then as a big LSTM: numpy to 100 bytes
        monkeypatch.setattr(encode, "SMALL_HIDDEN", small_hidden)
        if small_hidden == 1:
            cases = (
                ("你好\n" * 5, [], "numpy"),
                ("你好\n" * 20, [], None),
                ("你好\n" * 5, ["--workers", "2"], None),
            )
        for text, extra, want in cases:
            f.write_text(text, encoding="utf-8")
            seen.clear()
            result = CliRunner().invoke(cli, base + extra)
            assert result.exit_code == 0, result.output
            assert seen == [want], (text, extra)


def test_workers_option_errors(tmp_path):
    from click.testing import CliRunner

    from ltd_bert.cli import cli

    f = tmp_path / "s.txt"
    f.write_text("你好\n", encoding="utf-8")
    for bad in ("0", "two"):
        result = CliRunner().invoke(cli, ["encode", str(f), "--workers", bad])
        assert result.exit_code == 2
        assert "neither a count of at least 1 nor auto" in result.output


def test_hold_heap_sets_glibcs_options():
    import sys

    from ltd_bert.common.cpu import hold_heap

    assert hold_heap() is sys.platform.startswith("linux")  # glibc takes all three
