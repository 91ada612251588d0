"""Text that ships with the package, so that an installed `ltd` can check and adapt a model
without the repository: the fidelity suite, the calibration mix and the general replay sets
(README.md here says where each came from)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the fidelity suite: one `<kind>.txt` per kind of text, one text per line
SUITE = HERE / "suite"
#: the calibration mix: the same kinds from other held-back lines
CALIB = HERE / "calib"
#: general sentences replayed by `ltd adapt` when no --replay is given (gzip, one a line)
REPLAY = HERE / "replay.txt.gz"
#: general documents whose windows `ltd adapt` replays with the model's own vectors as targets
REPLAY_DOCS = HERE / "replay_docs.txt.gz"
