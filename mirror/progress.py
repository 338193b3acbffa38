"""Progress of long work on stderr: one line rewritten in place on a terminal, a line every few
seconds otherwise (CI logs)."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    """One line on a terminal (rewritten in place); a line every few seconds otherwise."""

    def __init__(self, total_files: int, total_bytes: int, label: str) -> None:
        self.total_files, self.total_bytes, self.label = total_files, total_bytes, label
        self.files = self.bytes = 0
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def advance(self, files: int = 0, size: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += size
            now = time.monotonic()
            if now - self._last < (0.1 if self._tty else 5.0) and self.files < self.total_files:
                return
            self._last = now
            done = self.bytes / self.total_bytes if self.total_bytes else 1.0
            bar = "#" * int(done * 30)
            text = f"{self.label} [{bar:<30}] {self.files}/{self.total_files} files, {self.bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB"
            print(("\r" + text) if self._tty else text, end="" if self._tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tty and self.total_files:
            print(file=sys.stderr)
