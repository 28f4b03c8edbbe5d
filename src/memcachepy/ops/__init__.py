"""Operations without I/O: counters and stats reports, hooks, logs, metrics, systemd notify."""
