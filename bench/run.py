#!/usr/bin/env python3
"""Benchmark memcachepy side by side with memcached.

    python bench/run.py               # the full comparison, a few minutes
    python bench/run.py --quick       # one short repeat of every scenario
    python bench/run.py --crosscheck  # loadgen against memcaslap, on memcached
    python bench/run.py --help

It measures the memcachepy installed in the Python that runs it (and says whether that
build is compiled or pure); that Python also needs matplotlib for the plot:

    pip install '.[bench]'            # from the repository's root, into a venv

See bench/README.md.
"""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
