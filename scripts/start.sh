#!/usr/bin/env bash
# Starts memcachepy on 127.0.0.1:11211 (64 MB), from the checkout's .venv, which it makes
# and fills first if needed. Flags are memcached's: ./scripts/start.sh -m 1024 -p 11311 -vv
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
make_venv
build_tools
install_package
exec "$venv_dir/bin/memcachepy" "$@"
