"""The benchmark harness behind bench/run.py: servers, load generator, reports."""
