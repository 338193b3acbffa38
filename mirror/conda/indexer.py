"""conda-index as a subprocess, and its warm-up while a cold sync downloads.

conda-index spends most of its time opening each package (2-3 ms a file here) and keeps what it read
in the indexed folder's `.cache` (by file name, size and mtime). `IndexWarmer` links each verified
download into its staging folders as it arrives, and runs conda-index over them in rounds that only
fill that cache (`--no-write-monolithic`: no repodata is written, so a round costs little more than
the files it reads), one after another until the downloads end. The publish's own run then finds
nearly every file already read. Downloads keep about one core busy and conda-index another, so a
cold sync's channel goes live about when conda-index alone would have finished (bench/conda.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, wait
from pathlib import Path

from mirror.conda.download import FetchError, Wanted

SHIM = Path(__file__).resolve().parent / "shim"
PACKAGE_KEYS = ("packages", "packages.conda")
WARM_FROM_FILES = 100
"""Downloads of fewer files are not worth an extra conda-index run."""
ROUND_FROM_FILES = 100
"""Nor is a warm-up round over fewer new files: each costs a conda-index start (~0.2 s of CPU)."""
POOL_FROM_BYTES = 256 << 20
"""conda-index reads packages in its own process unless more than this is new to it. Its pool (one
process per core) spawns a fresh interpreter per worker and pickles its cache for every file, which
only decompressing big archives earns back: 2,000 small packages take 3.4 s in-process, 5.7 s pooled."""


def index_threads(new_bytes: int) -> int | None:
    """conda-index's `--threads` for a run that must read `new_bytes` of packages (None: its default)."""
    return None if new_bytes > POOL_FROM_BYTES else 1


def index_subdirs(
    channel_dir: Path, subdirs: list[str], output: Path, write: bool = True, threads: int | None = None
) -> None:
    """conda-index as a subprocess, with the `conda` shim on its PYTHONPATH only. `write=False`
    reads new packages into the cache and writes no repodata (the warm-up's rounds). `threads`:
    conda-index's own default (one process per core) unless given; 1 reads in-process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SHIM), os.environ.get("PYTHONPATH")]))}
    argv = [
        sys.executable,
        "-m",
        "conda_index",
        str(channel_dir),
        "--output",
        str(output),
        "--no-current-repodata",
        "--no-rss",
        "--no-channeldata",
        "--no-bz2",
        "--no-zst",
    ]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if not write:
        argv.append("--no-write-monolithic")
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
    """Fed verified downloads (`add`, from the downloading threads), which it links into staging at
    once; `run_until` runs conda-index over what arrived, round after round."""

    def __init__(self, conda_root: Path, cache_root: Path, selection: dict[str, dict]) -> None:
        self._conda_root, self._cache_root = conda_root, cache_root
        self._environments: dict[tuple[str, str, str], list[str]] = {}
        """(channel, subdir, file) -> the environments that selected it."""
        for env, chosen in selection.items():
            for key in chosen:
                self._environments.setdefault(key, []).append(env)
        self._lock = threading.Lock()
        self._touched: dict[tuple[str, str], set[str]] = {}
        """(env, channel) -> subdirs that received files since the last round."""
        self.unwarmed_bytes = 0
        """Size of the files staged since the last round began: what the publish's run will read."""
        self._unwarmed_files = 0
        self._folders: set[Path] = set()

    def add(self, wanted: Wanted) -> None:
        for env in self._environments.get((wanted.channel, wanted.subdir, wanted.filename), ()):
            folder = staging_folder(self._conda_root, env, wanted.channel) / wanted.subdir
            if folder not in self._folders:
                folder.mkdir(parents=True, exist_ok=True)
                self._folders.add(folder)
            with contextlib.suppress(FileExistsError):  # staged by an earlier sync
                os.link(wanted.path(self._cache_root), folder / wanted.filename)
            with self._lock:
                self._touched.setdefault((env, wanted.channel), set()).add(wanted.subdir)
        with self._lock:
            self.unwarmed_bytes += wanted.size
            self._unwarmed_files += 1

    def run_until(self, downloads: Future) -> None:
        """Warm in rounds until `downloads` is done; the last files are left to the publish."""
        while not downloads.done():  # every file is added before the downloads are done
            with self._lock:
                # Fewer files wait for the next round, or for the publish's own run.
                ready = self._unwarmed_files >= ROUND_FROM_FILES
                if ready:
                    touched, self._touched = self._touched, {}
                    self.unwarmed_bytes = self._unwarmed_files = 0  # the round reads everything staged so far
            if not ready:
                wait([downloads], timeout=0.05)
                continue
            for (env, channel), subdirs in touched.items():
                self._warm(staging_folder(self._conda_root, env, channel), sorted(subdirs))

    def _warm(self, staging: Path, subdirs: list[str]) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="warm-", dir=self._conda_root))
        try:
            # In-process (one thread): the downloads use the other core, and conda-index's pool
            # would spawn fresh worker processes and pickle its cache for every file, every round.
            index_subdirs(staging, subdirs, scratch, write=False, threads=1)
        except (FetchError, subprocess.SubprocessError, OSError):
            pass  # only a warm-up: the publish's own run reports what is wrong
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
