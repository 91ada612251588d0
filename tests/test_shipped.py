"""The distilled default model shipped in the package."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ltd_bert.cli import cli
from ltd_bert.models import default_model_dir, model_path, shipped_names
from ltd_bert.student.model import Student


def test_shipped_model_is_there():
    assert default_model_dir() is not None, "ltd_bert/models/zh-small/ is missing"


@pytest.mark.parametrize("name", shipped_names())
def test_shipped_models_are_small(name):
    path = model_path(name)
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 22e6  # issue 18: every shipped model ≤ 22 MB on disk
    meta = json.loads((path / "config.json").read_text())
    assert meta["teacher"] == "multilingual-e5-small" and meta["centered"] is True


@pytest.mark.parametrize("name", shipped_names())
def test_paraphrases_score_higher_than_unrelated(name):
    s = Student.load(name)
    v = s.encode(
        [
            "今天天气很好，我们去公园散步吧。",
            "天气不错，一起去公园走走吧。",
            "股市今天大幅下跌，投资者损失惨重。",
            "如何学习编程？",
            "学编程应该从哪里开始？",
        ],
        normalize=True,
    )
    assert v.shape == (5, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
    assert v[3] @ v[4] > v[3] @ v[2] + 0.1


def test_encode_without_model_uses_the_shipped_one(tmp_path):
    result = CliRunner().invoke(cli, ["--workdir", str(tmp_path), "encode", "-"], input="你好\n")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["vector"]) == 384
    assert np.isfinite(json.loads(result.output)["vector"]).all()
