#!/usr/bin/env bash
# Installs what the test suite needs, then runs it. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v memcached >/dev/null || need_apt+=(memcached)
command -v memccapable >/dev/null || need_apt+=(libmemcached-tools)
command -v nutcracker >/dev/null || [ -x /usr/sbin/nutcracker ] || need_apt+=(nutcracker)
# systemd-analyze (verify, security) and systemd-socket-activate for the unit tests.
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# Debian's netcat for the README's dump/load example (nc -N).
command -v nc >/dev/null || need_apt+=(netcat-openbsd)
# promtool checks and unit-tests deploy/prometheus/alerts.yml (about 10 s to install).
command -v promtool >/dev/null || need_apt+=(prometheus)
# The mypyc build (setup.py) needs a C compiler and Python's headers.
command -v cc >/dev/null || need_apt+=(gcc)
python_h=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h
[ -e "$python_h" ] || need_apt+=(python3-dev)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages: ${need_apt[*]}"
        apt-get update -qq
        # No recommends: prometheus would bring its node exporter, which no test needs.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need_apt[@]}" >/dev/null
    else
        echo "warning: ${need_apt[*]} missing and cannot be installed here; those tests will skip" >&2
    fi
fi

# The install compiles protocol/, store/ and dispatch/ with mypyc where a C compiler is
# present (setup.py); MEMCACHEPY_PURE=1 skips compiling, and at run time makes imports take
# the Python sources, so one install is tested both ways.
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# Exits 1 on a build that compiled only some modules.
mode=$(python3 -m memcachepy.native)
echo "memcachepy modules: $mode"
if [ "$mode" = pure ] && [ -z "${MEMCACHEPY_PURE:-}" ] && command -v cc >/dev/null \
        && [ -e "$python_h" ]; then
    # A build that can compile and did not would test pure Python only, and pass.
    echo "a C compiler and Python.h are here but the build compiled nothing" \
        "(see pip install -v; MEMCACHEPY_PURE=1 asks for pure Python)" >&2
    exit 1
fi
if [ "$mode" != compiled ]; then
    exec python3 -m pytest "$@"
fi

# Compiled: the whole suite (or the tests asked for), then, for a whole-suite run, the tests
# of the compiled floors and of the wire (differential, dispatch) again in pure Python
# (about 2.5 of CI's 10 minutes; the rest of the suite runs compiled only).
python3 -m pytest "$@"
for arg in "$@"; do
    if [[ $arg != -* && -e ${arg%%::*} ]]; then exit 0; fi  # paths given: one mode asked for
done
pure_tests=()
for t in tests/protocol tests/store tests/differential tests/dispatch tests/test_dispatch_meta.py tests/native; do
    [ -e "$t" ] && pure_tests+=("$t")
done
echo "memcachepy modules: pure (MEMCACHEPY_PURE=1) for ${pure_tests[*]}"
MEMCACHEPY_PURE=1 exec python3 -m pytest "$@" "${pure_tests[@]}"
