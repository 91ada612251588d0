"""The working directory of a run and its record, `run.json`.

`ltd idf build` → `idf.tsv` (records the corpus), `ltd teacher-embed` → `teacher.h5`,
`ltd train` → `model/`, `ltd encode` uses `model/`. Each step records what it wrote and
with which settings, so the next step needs no arguments, and a missing step is reported
with the command that makes it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ltd_bert.common.errors import MissingStepError
from ltd_bert.text.idf import atomic_write_text

RECORD = "run.json"
DEFAULT_WORKDIR = "ltd_work"

# step → (default file name in the workdir, the command that makes it)
STEPS = {
    "idf": ("idf.tsv", "ltd idf build CORPUS.txt"),
    "teacher": ("teacher.h5", "ltd teacher-embed"),
    "model": ("model", "ltd train"),
}


class Workdir:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or os.environ.get("LTD_WORKDIR") or DEFAULT_WORKDIR)

    def file(self, step: str) -> Path:
        return self.path / STEPS[step][0]

    def ensure(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def load(self) -> dict[str, Any]:
        p = self.path / RECORD
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def record(self, step: str, **info: Any) -> None:
        """Note that `step` wrote its output, with `info` (paths are made absolute)."""
        self.ensure()
        data = self.load()
        info = {k: _absolute(v) for k, v in info.items()}
        info["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        data[step] = info
        atomic_write_text(self.path / RECORD, json.dumps(data, ensure_ascii=False, indent=2))

    def get(self, step: str) -> dict[str, Any] | None:
        return self.load().get(step)

    def require(self, step: str, key: str = "output") -> Any:
        """The recorded `key` of `step`, or an error naming the command to run first."""
        info = self.get(step)
        if info and key in info and (key != "output" or Path(info[key]).exists()):
            return info[key]
        default = self.file(step)
        if key == "output" and default.exists():
            return str(default)
        raise MissingStepError(
            f"no {STEPS[step][0]} in {self.path}: run `{STEPS[step][1]}` first "
            f"(or pass the file explicitly)"
        )


def _absolute(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
        return [str(v.resolve()) for v in value]
    return value
