import sys

try:
    from memcachepy.cli import main
except ModuleNotFoundError as missing:  # run from a checkout without its dependencies
    if missing.name not in ("trio", "pymemcache", "prometheus_client"):
        raise
    sys.exit(f"memcachepy: the {missing.name} package is missing. Install memcachepy and its "
             "dependencies in a virtual environment (Python 3.11 or later):\n"
             "  python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/memcachepy")

sys.exit(main())
