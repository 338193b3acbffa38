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


def run(progress: Progress, clock: list[float], seconds_each: float) -> None:
    for _ in range(progress.total_files):
        clock[0] += seconds_each
        progress.advance(files=1)
    progress.close()


def test_short_work_shows_no_progress(clock, capsys):
    run(Progress(3, 0, "verifying the audit log", unit="records"), clock, 0.2)
    assert capsys.readouterr().err == ""


def test_long_work_shows_counts_every_few_seconds_and_the_end(clock, capsys):
    run(Progress(4, 0, "containers sync", unit="images"), clock, 3.0)
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
