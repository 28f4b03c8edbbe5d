"""A progress display: a live status line on a terminal, one line per run otherwise."""

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Counts finished runs out of `total` and estimates the time left."""

    def __init__(self, total: int, run_estimate_s: float, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.run_estimate_s = run_estimate_s
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.label = ""
        self.run_started = self.started

    def _eta(self, in_run_s: float) -> float:
        elapsed = time.monotonic() - self.started
        per_run = (elapsed - in_run_s) / self.done if self.done else self.run_estimate_s
        return max(0.0, per_run * (self.total - self.done) - in_run_s)

    def _status(self, in_run_s: float) -> str:
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.monotonic() - self.started
        return (
            f"[{bar}] {self.done}/{self.total}  {self.label}  {in_run_s:4.1f} s"
            f"  | elapsed {_clock(elapsed)}, about {_clock(self._eta(in_run_s))} left"
        )

    def _draw(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def start_run(self, label: str) -> None:
        self.label = label
        self.run_started = time.monotonic()
        if self.live:
            self._draw(self._status(0.0))

    def tick(self, in_run_s: float) -> None:
        if self.live:
            self._draw(self._status(in_run_s))

    def finish_run(self, line: str) -> None:
        """Counts a run as done and prints its one-line result above the status line."""
        self.done += 1
        text = f"[{self.done}/{self.total}] {self.label}: {line}"
        if self.live:
            self._draw(text + "\n" + self._status(0.0))
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if self.live:
            self._draw(text + "\n" + self._status(0.0))
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self._draw("")
        took = _clock(time.monotonic() - self.started)
        self.stream.write(f"finished {self.done} runs in {took}\n")
        self.stream.flush()
