# Sourced by start.sh and test.sh: the checkout's own virtual environment, .venv, with
# memcachepy installed from this checkout (compiled where a C compiler is present).
#
# It never installs into a system or global Python: whatever python3 is first on PATH
# (Debian's, pyenv's, conda's) only creates .venv, and every pip runs inside it.
# MEMCACHEPY_PYTHON names the interpreter to build .venv from, if not the first Python
# 3.11+ on PATH.

venv_dir=.venv

_is_supported_python() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

pick_python() {
    local candidate
    for candidate in ${MEMCACHEPY_PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null && _is_supported_python "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "memcachepy needs Python 3.11 or later; none found on PATH" \
         "(set MEMCACHEPY_PYTHON to one)" >&2
    return 1
}

_apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages: $*"
        apt-get update -qq
        # No recommends: prometheus would bring its node exporter, which no test needs.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "$@" >/dev/null
        return 0
    fi
    return 1
}

# Creates .venv if it is missing or its Python no longer runs (a moved checkout, an
# upgraded system Python).
make_venv() {
    if [ -x "$venv_dir/bin/python" ] && _is_supported_python "$venv_dir/bin/python"; then
        return 0
    fi
    local python
    python=$(pick_python) || return 1
    rm -rf "$venv_dir"
    if ! "$python" -m venv "$venv_dir" 2>/dev/null; then
        # Debian and Ubuntu ship venv's pip (ensurepip) apart, as python3.X-venv.
        local version
        version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        rm -rf "$venv_dir"
        if ! _apt_install "python$version-venv" || ! "$python" -m venv "$venv_dir"; then
            echo "cannot create $venv_dir with $python: install python$version-venv" \
                 "(Debian, Ubuntu) and run this again" >&2
            return 1
        fi
    fi
    echo "created $venv_dir with $python"
}

# A C compiler and Python's headers for the mypyc build; Debian's packages where missing.
build_tools() {
    local need=() include
    command -v cc >/dev/null || need+=(gcc)
    include=$("$venv_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -e "$include/Python.h" ] || need+=(python3-dev)
    if ((${#need[@]})) && ! _apt_install "${need[@]}"; then
        echo "warning: ${need[*]} missing; memcachepy installs as pure Python" >&2
    fi
}

# What the installed package was built from: the sources, the build files and the mode.
_source_stamp() {
    "$venv_dir/bin/python" - <<'PY'
import hashlib, os, pathlib
digest = hashlib.sha256(os.environ.get("MEMCACHEPY_PURE", "").encode())
paths = [pathlib.Path("setup.py"), pathlib.Path("pyproject.toml")]
paths += sorted(p for p in pathlib.Path("src").rglob("*") if p.is_file()
                and "__pycache__" not in p.parts and p.suffix in (".py", ".typed"))
for path in paths:
    digest.update(str(path).encode() + b"\0" + path.read_bytes())
print(digest.hexdigest())
PY
}

# Installs this checkout into .venv (not editable: what runs is what a user installs),
# unless the same sources are installed already.
install_package() {
    local stamp_file="$venv_dir/.memcachepy-source" stamp
    stamp=$(_source_stamp)
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
            && "$venv_dir/bin/python" -c 'import memcachepy' 2>/dev/null; then
        return 0
    fi
    echo "installing memcachepy from this checkout into $venv_dir (compiling takes a few minutes)"
    "$venv_dir/bin/python" -m pip install -q --disable-pip-version-check .
    echo "$stamp" >"$stamp_file"
}

# Installs an optional extra's requirements (pyproject.toml) without rebuilding the package.
install_extra() {
    "$venv_dir/bin/python" - "$1" >"$venv_dir/.requirements-$1.txt" <<'PY'
import sys, tomllib
with open("pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
print("\n".join(project["optional-dependencies"][sys.argv[1]]))
PY
    "$venv_dir/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$venv_dir/.requirements-$1.txt"
}
