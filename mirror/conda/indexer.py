"""conda-index as a subprocess, and its warm-up while a cold sync downloads.

conda-index spends most of its time opening each package (about 2 ms a file here) and keeps what it
read in the indexed folder's `.cache` (by file name, size and mtime). `IndexWarmer` links verified
downloads into their staging folders as they arrive and runs conda-index over them, output thrown
away, until the downloads end: the publish's own run then finds nearly every file already read.
Downloads keep about one core busy and conda-index another, so a cold sync's channel goes live
about when its downloads end plus one cached index run (bench/conda.py).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import Future, wait
from pathlib import Path

from mirror.conda.download import FetchError, Wanted

SHIM = Path(__file__).resolve().parent / "shim"
PACKAGE_KEYS = ("packages", "packages.conda")
WARM_FROM_FILES = 100
"""Downloads of fewer files are not worth an extra conda-index run."""


def index_subdirs(channel_dir: Path, subdirs: list[str], output: Path) -> None:
    """conda-index as a subprocess, with the `conda` shim on its PYTHONPATH only."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SHIM), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "conda_index", str(channel_dir), "--output", str(output), "--no-current-repodata",
            "--no-rss", "--no-channeldata", "--no-bz2", "--no-zst", "--threads", "2"]
    for subdir in subdirs:
        argv += ["--subdir", subdir]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise FetchError(f"conda-index failed on {channel_dir} (exit {result.returncode}): {tail}")


def staging_folder(conda_root: Path, env: str, channel: str) -> Path:
    return conda_root / "staging" / env / channel


def indexed_files(repodata_path: Path) -> set[str]:
    data = json.loads(repodata_path.read_text())
    return {name for key in PACKAGE_KEYS for name in data.get(key, {})}


class IndexWarmer:
    """Fed verified downloads (`add`, from the download thread); `run_until` links and indexes them."""

    def __init__(self, conda_root: Path, cache_root: Path, selection: dict[str, dict]) -> None:
        self._conda_root, self._cache_root = conda_root, cache_root
        self._environments: dict[tuple[str, str, str], list[str]] = {}
        """(channel, subdir, file) -> the environments that selected it."""
        for env, chosen in selection.items():
            for key in chosen:
                self._environments.setdefault(key, []).append(env)
        self._arrived: queue.SimpleQueue[Wanted] = queue.SimpleQueue()

    def add(self, wanted: Wanted) -> None:
        self._arrived.put(wanted)

    def run_until(self, downloads: Future) -> None:
        """Link and warm in rounds until `downloads` is done; the last files are left to the publish."""
        touched: dict[tuple[str, str], set[str]] = {}
        while True:
            finished = downloads.done()  # before draining: every file is announced before it is done
            while not self._arrived.empty():
                item = self._arrived.get()
                for env in self._environments.get((item.channel, item.subdir, item.filename), ()):
                    folder = staging_folder(self._conda_root, env, item.channel) / item.subdir
                    folder.mkdir(parents=True, exist_ok=True)
                    if not (folder / item.filename).exists():
                        os.link(item.path(self._cache_root), folder / item.filename)
                    touched.setdefault((env, item.channel), set()).add(item.subdir)
            if finished:
                return
            if not touched:
                wait([downloads], timeout=0.2)
                continue
            for (env, channel), subdirs in touched.items():
                self._warm(staging_folder(self._conda_root, env, channel), sorted(subdirs))
            touched.clear()

    def _warm(self, staging: Path, subdirs: list[str]) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="warm-", dir=self._conda_root))
        try:
            index_subdirs(staging, subdirs, scratch)
        except (FetchError, subprocess.SubprocessError, OSError):
            pass  # only a warm-up: the publish's own run reports what is wrong
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
