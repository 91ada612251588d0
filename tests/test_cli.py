from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from ltd_bert.cli import cli

CORPUS = "我们 去 公园\n我们 我们 散步\n公园 散步 !\n"


def all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20
    assert "Usage: " in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "ltd, version" in result.output


def test_idf_build_records_run(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text(CORPUS, encoding="utf-8")
    wd = tmp_path / "work"
    result = CliRunner().invoke(cli, ["--workdir", str(wd), "idf", "build", str(src), "-q"])
    assert result.exit_code == 0, result.output
    assert (wd / "idf.tsv").is_file()
    record = json.loads((wd / "run.json").read_text())
    assert record["idf"]["corpus"] == [str(src.resolve())]
    assert record["idf"]["documents"] == 3
    assert "4 words from 3 documents" in result.output


def test_idf_build_env_workdir_and_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv("LTD_WORKDIR", str(tmp_path / "w"))
    result = CliRunner().invoke(cli, ["idf", "build", "-", "--workers", "1"], input=CORPUS)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / "idf.tsv").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "nope.txt: no such file"),
        (b"\n\n", "no non-empty lines"),
        (b"ok\n\xff\xfe\n", "c.txt:2: not valid UTF-8"),
    ],
)
def test_idf_build_bad_input(tmp_path, content, message):
    src = tmp_path / ("nope.txt" if content is None else "c.txt")
    if content is not None:
        src.write_bytes(content)
    result = CliRunner().invoke(cli, ["--workdir", str(tmp_path), "idf", "build", str(src)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_idf_weights_prints_characters(tmp_path):
    idf = tmp_path / "idf.tsv"
    idf.write_text("我们\t2.0\n去\t3.0\n公园\t6.0\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["idf", "weights", "我们去公园", "--idf", str(idf), "--eps", "0"]
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()[1:]]
    assert [(r[0].strip(), r[1]) for r in rows] == [
        ("我", "0.0909"),
        ("们", "0.0909"),
        ("去", "0.2727"),
        ("公", "0.2727"),
        ("园", "0.2727"),
    ]


def test_idf_weights_defaults_to_jieba(tmp_path):
    result = CliRunner().invoke(cli, ["--workdir", str(tmp_path), "idf", "weights", "你好"])
    assert result.exit_code == 0 and "idf: jieba" in result.output


def test_python_dash_m():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ltd_bert", "--help"], capture_output=True, text=True, check=True
    )
    assert "ltd idf build" in out.stdout
