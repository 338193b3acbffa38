"""Progress of long work on stderr (conda sync, containers sync, audit verify): nothing for work that
ends within a second, then a line every few seconds in a CI log, and the final count."""

from __future__ import annotations

import pytest

from mirror import progress as progress_module
from mirror.progress import Progress


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def test_short_work_shows_no_progress(clock, capsys):
    progress = Progress(3, 0, "verifying the audit log", unit="records")
    for _ in range(3):
        clock[0] += 0.2
        progress.advance(files=1)
    progress.close()
    assert capsys.readouterr().err == ""


def test_long_work_shows_counts_every_few_seconds_and_the_end(clock, capsys):
    progress = Progress(4, 0, "containers sync", unit="images")
    for _ in range(4):
        clock[0] += 3.0
        progress.advance(files=1)
    progress.close()
    assert capsys.readouterr().err.splitlines() == [
        "containers sync [#######                       ] 1/4 images",
        "containers sync [######################        ] 3/4 images",
        "containers sync [##############################] 4/4 images",
    ]


def test_downloads_show_megabytes(clock, capsys):
    progress = Progress(2, 4_000_000, "conda sync")
    clock[0] += 2.0
    progress.advance(files=1, size=1_000_000)
    assert capsys.readouterr().err == "conda sync [#######                       ] 1/2 files, 1.0/4.0 MB\n"
