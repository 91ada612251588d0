"""ltd-bert: distil a BERT teacher into a tiny, CPU-fast BiLSTM sentence encoder (LTD-BERT)."""

from __future__ import annotations

from ltd_bert.common.version import __version__

__all__ = ["Student", "__version__"]


def __getattr__(name: str):
    # Lazy: importing the package must not import torch (the CLI's --help stays fast).
    if name == "Student":
        from ltd_bert.student.model import Student

        return Student
    raise AttributeError(name)
