"""``memcachepy-tool HOST:PORT <command>``: an operator's view of a running node.

In the spirit of memcached-tool, for memcachepy and memcached alike (it speaks the text
protocol over a plain socket, no trio): ``display`` (slab classes), ``stats``, ``settings``,
``dump`` (every key and value, as commands that load another server), ``top`` (a live view),
``cluster`` (the nodes of ``config get cluster`` with their health and key share). Tables are
for a terminal; ``--json`` prints the same facts for programs.
"""
