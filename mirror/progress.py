"""Progress of long work on stderr: one line rewritten in place on a terminal, a line every few
seconds otherwise (CI logs)."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    """One line on a terminal (rewritten in place); a line every few seconds otherwise. Work done
    within its first second shows nothing: a progress line there is only noise."""

    def __init__(self, total_files: int, total_bytes: int, label: str, unit: str = "files") -> None:
        self.total_files, self.total_bytes, self.label, self.unit = total_files, total_bytes, label, unit
        self.files = self.bytes = 0
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()
        self._interval = 0.1 if self._tty else 5.0
        self._last = time.monotonic() + 1.0 - self._interval
        self._shown = False

    def advance(self, files: int = 0, size: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += size
            now = time.monotonic()
            finished = self.files >= self.total_files
            if (finished and not self._shown) or (not finished and now - self._last < self._interval):
                return
            self._last, self._shown = now, True
            if self.total_bytes:
                done, sizes = self.bytes / self.total_bytes, f", {self.bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB"
            else:  # counted work (images, records): no sizes to show
                done, sizes = (self.files / self.total_files if self.total_files else 1.0), ""
            bar = "#" * int(done * 30)
            text = f"{self.label} [{bar:<30}] {self.files}/{self.total_files} {self.unit}{sizes}"
            print(("\r" + text) if self._tty else text, end="" if self._tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tty and self._shown:
            print(file=sys.stderr)
