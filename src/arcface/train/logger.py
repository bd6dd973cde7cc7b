"""Scalar logging: a long-format CSV (``step,tag,value,time``) and TensorBoard event files when available."""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path

from arcface.errors import first_line
from arcface.io_utils import atomic_write_text

log = logging.getLogger(__name__)


class ScalarLogger:
    """Append scalars to ``OUTPUT/scalars.csv`` (and TensorBoard under ``OUTPUT/tb`` if importable).

    The CSV is flushed after every write, so a killed run keeps its history. On resume, rows with a step
    greater than the resumed step are dropped first (they belong to the abandoned continuation).
    """

    def __init__(self, output: str | os.PathLike, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(output) / "scalars.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh)]
            keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_step] if rows else []
            buf = io.StringIO(newline="")
            csv.writer(buf).writerows(keep)
            atomic_write_text(self.path, buf.getvalue())
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(["step", "tag", "value", "time"])
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output) / "tb"))
            except Exception as exc:  # tensorboard not installed
                log.warning(
                    "run.tensorboard=true but TensorBoard cannot be used (%s): scalars go to %s only "
                    "(pip install tensorboard, or set run.tensorboard=false)",
                    first_line(exc),
                    self.path,
                )
                self._tb = None

    def log(self, step: int, scalars: dict[str, float]) -> None:
        now = time.time()
        for tag, value in scalars.items():
            self._csv.writerow([step, tag, f"{float(value):.8g}", f"{now:.3f}"])
            if self._tb is not None:
                self._tb.add_scalar(tag, float(value), step)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_scalars(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``scalars.csv`` -> ``{tag: [(step, value), ...]}``."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["tag"], []).append((int(row["step"]), float(row["value"])))
    return out
