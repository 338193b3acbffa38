"""The service's log lines: one readable line per event on a terminal, one JSON object per line for
machines (compose, Kubernetes, a file), as `AIRLOCK_LOG_FORMAT` says (`auto`: a terminal gets
text). Third-party INFO chatter (Alembic's plugin set-up, uvicorn's start-up lines) is shown only
with `AIRLOCK_LOG_LEVEL=debug`."""

from __future__ import annotations

import json
import logging
import sys
from typing import IO

from mirror.observability import LogContext

_STANDARD_RECORD_KEYS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_DROPPED_KEYS = {"color_message", "request_id"}
"""uvicorn's `color_message` repeats `message` with ANSI colours; the request id has its own field."""
_CHATTY = ("alembic", "uvicorn.error", "uvicorn", "httpx", "httpcore")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with whatever `extra=` fields a caller attached."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS and k not in _DROPPED_KEYS}
        )
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TerminalFormatter(logging.Formatter):
    """`12:04:31 WARN  what happened  [request 3f2a…]`: the time, the level, the sentence."""

    _SHOWN = {"WARNING": "WARN", "CRITICAL": "ERROR"}

    def format(self, record: logging.LogRecord) -> str:
        level = self._SHOWN.get(record.levelname, record.levelname)
        line = f"{self.formatTime(record, '%H:%M:%S')} {level:<5} {record.getMessage()}"
        request = getattr(record, "request_id", "-")
        if request != "-":
            line += f"  [request {request[:12]}]"
        if record.exc_info:  # a bug: the trace is what a report needs
            line += "\n" + self.formatException(record.exc_info)
        return line


def uses_terminal(log_format: str, stream: IO[str]) -> bool:
    return log_format == "text" or (log_format == "auto" and stream.isatty())


def configure_logging(log_format: str, log_level: str, stream: IO[str] = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.addFilter(LogContext())
    handler.setFormatter(TerminalFormatter() if uses_terminal(log_format, stream) else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = _LEVELS[log_level]
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level if level == logging.DEBUG else max(level, logging.WARNING))
