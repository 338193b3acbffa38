"""Benchmark: a warm `docker pull` of a multi-layer image through Airlock vs straight from the
local registry, in the same run (real Docker engine, Debian's docker-registry).

Warm: the image was pulled once before (Airlock's cache holds it); each timed pull starts after
`docker rmi`. Median of 5 pulls each. Goal (issue 7): <= 1.15x.

    .venv/bin/python bench/containers.py     (as root: it starts its own dockerd)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.docker import DockerEngine, Registry
from testkit.servers import AirlockProcess

LAYERS = 6
LAYER_BYTES = 4 * 1024 * 1024


def timed_pull(engine: DockerEngine, reference: str, every_name: list[str], runs: int = 5) -> float:
    """Median pull time with no local copy at the start (under any name: same layers, same image)."""
    engine.docker("pull", reference)
    times = []
    for _ in range(runs):
        for name in every_name:
            engine.docker("rmi", name, check=False)
        began = time.perf_counter()
        engine.docker("pull", reference)
        times.append(time.perf_counter() - began)
    for name in every_name:
        engine.docker("rmi", name, check=False)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        engine = DockerEngine(tmp / "docker").start()
        upstream = Registry(tmp / "upstream").start()
        airlock = None
        try:
            layers = [os.urandom(LAYER_BYTES).hex()[:LAYER_BYTES] for _ in range(LAYERS)]
            name = "azureml/bench:2024.1"
            engine.build(f"{upstream.host}/{name}", layers, tmp / "context")
            engine.docker("push", f"{upstream.host}/{name}")
            engine.docker("rmi", f"{upstream.host}/{name}")
            work = tmp / "airlock"
            (work / "allowlists").mkdir(parents=True)
            (work / "allowlists" / "containers.yaml").write_text(
                "ecosystem: containers\nenvironments: {prod: {}}\n"
                f"upstreams: {{mar: {{url: {upstream.url}}}}}\n"
                'images:\n  - {image: mar/azureml/bench, tags: ["2024*"], environments: [prod], reason: bench, owner: bench}\n'
            )
            airlock = AirlockProcess(
                work,
                {
                    "AIRLOCK_DATA_DIR": str(work / "data"),
                    "AIRLOCK_ALLOWLISTS": str(work / "allowlists"),
                    "AIRLOCK_LOG_FORMAT": "text",
                },
            ).start()
            names = [f"{upstream.host}/{name}", f"127.0.0.1:{airlock.port}/prod/mar/{name}"]
            direct = timed_pull(engine, names[0], names)
            through = timed_pull(engine, names[1], names)
        finally:
            if airlock is not None:
                airlock.stop()
            upstream.stop()
            engine.stop()
    size = LAYERS * LAYER_BYTES / 1e6
    print(
        f"warm docker pull of a {LAYERS + 1}-layer image ({size:.0f} MB): through Airlock {through:.2f} s,"
        f" straight from the registry {direct:.2f} s = {through / direct:.2f}x  (goal <= 1.15x)"
    )


if __name__ == "__main__":
    main()
