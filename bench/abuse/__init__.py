"""``python -m bench.abuse``: attacks against memcachepy and memcached, side by side.

Each attack is a plain function registered with :func:`~bench.abuse.attacks.attack`; the
runner starts a fresh server for each (attack, server) pair on 127.0.0.1, runs a checker
client beside the attack (a set and a get of its own keys every few milliseconds, in a
process of its own) and samples the server's RSS, then prints one table: RSS before, peak
and after, the checker's errors and slowest reply, and whether the daemon survived.
"""

# Imported for their registrations. The table follows this order, after the attacks of
# attacks.py itself (every module here imports it first).
# isort: off
from bench.abuse import dump_attacks, watch_attack, udp_attack, auth_attack  # noqa: F401
# isort: on
