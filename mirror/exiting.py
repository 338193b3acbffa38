"""Ending a command: flush what it wrote, then exit without CPython's teardown (`os._exit`).

Every command writes and closes what it produces (files, database transactions) before it returns,
so os._exit loses nothing and the exit code stays true. Import-light on purpose: the gate imports it
before it starts Trivy.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def leave(code: int) -> NoReturn:
    logging = sys.modules.get("logging")
    if logging is not None:  # flush log handlers, if anything loaded logging at all
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away (| head), or a stream main closed
            stream.flush()
    os._exit(code)
