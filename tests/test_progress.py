"""Progress on stderr when it is not a terminal: whole lines, and none for short jobs."""

import io
import sys

from ltd_bert.common import progress


def run_bar(monkeypatch, interval: str | None, steps=3, postfix=False, **kw) -> str:
    buf = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", buf)
    if interval is None:
        monkeypatch.delenv("LTD_PROGRESS_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("LTD_PROGRESS_INTERVAL", interval)
    b = progress.bar(unit="line", desc="teacher-embed", **kw)
    for i in range(steps):
        b.update(1)
        if postfix:
            b.set_postfix(loss=i)
    b.close()
    return buf.getvalue()


def test_log_lines_are_whole_lines(monkeypatch):
    out = run_bar(monkeypatch, "0", total=3)
    lines = out.split("\n")
    assert "\r" not in out and lines[-1] == ""
    assert lines[0].startswith("teacher-embed: 0/3 line [")
    assert lines[-2].startswith("teacher-embed: 3/3 line [")


def test_short_job_prints_nothing(monkeypatch):
    assert run_bar(monkeypatch, None, total=3) == ""


def test_quiet_prints_nothing(monkeypatch):
    assert run_bar(monkeypatch, "0", total=3, quiet=True) == ""


def test_postfix_does_not_force_lines(monkeypatch):
    assert run_bar(monkeypatch, "60", steps=50, postfix=True) == ""
