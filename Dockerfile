# Airlock's service image: `airlock up` on 0.0.0.0:8000 with its state in /var/lib/airlock.
# The base is a build argument so sites build on their vetted base (e.g. a Microsoft Artifact
# Registry image); any Debian or Ubuntu base with Python >= 3.11 works. Python packages come from
# build/image/wheelhouse (scripts/build-image fills it on the build host), so the build needs no
# PyPI access, only the base's apt repositories for python3-venv and docker-registry.
# Three layers on purpose: on some storage drivers (vfs) every step copies the whole file system.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates docker-registry \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 airlock \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/airlock --create-home airlock

COPY build/image/ /tmp/image/
RUN python3 -m venv /opt/airlock \
    && /opt/airlock/bin/pip install --no-cache-dir --no-index --find-links /tmp/image/wheelhouse airlock \
    && mkdir -p /etc/airlock && mv /tmp/image/allowlists /etc/airlock/allowlists \
    && rm -rf /tmp/image

# Few metadata instructions on purpose too (each is a container commit); compose.yaml adds the
# health check (`airlock status`), the volume for /var/lib/airlock and the published port (8000).
ENV PATH=/opt/airlock/bin:$PATH \
    AIRLOCK_LISTEN=0.0.0.0:8000 \
    AIRLOCK_DATA_DIR=/var/lib/airlock \
    AIRLOCK_ALLOWLISTS=/etc/airlock/allowlists \
    AIRLOCK_LOG_FORMAT=json \
    HOME=/var/lib/airlock
USER airlock
CMD ["airlock", "up"]
