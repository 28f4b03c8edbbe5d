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

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"
