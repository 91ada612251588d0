"""ltd-bert: distil a BERT teacher into a tiny, CPU-fast BiLSTM sentence encoder (LTD-BERT)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Student", "__version__"]


def __getattr__(name: str):
    # Lazy: importing the package must not import torch (the CLI's --help stays fast).
    if name == "Student":
        from ltd_bert.student import Student

        return Student
    raise AttributeError(name)
