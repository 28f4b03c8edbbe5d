"""The mypyc build: which modules are compiled, and the switch back to their sources."""
