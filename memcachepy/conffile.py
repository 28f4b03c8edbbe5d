"""Debian's /etc/memcached.conf: each line is flags, as Debian's start script reads it.

The rules of Debian's systemd-memcached-wrapper: ``#`` starts a comment (``\\#`` does
not), blank lines are skipped, ``-d`` and ``-h`` lines are dropped (systemd supervises the
process), and a line that is not a flag (``logfile /var/log/memcached.log``) is a
directive of the start script, not of memcached, and is skipped too.
"""

from __future__ import annotations

import re
import shlex

DEBIAN_CONF = "/etc/memcached.conf"
_COMMENT = re.compile(r"(?<!\\)#[^#]*")


class ConfFileError(ValueError):
    """The file cannot be read, or a line cannot be split into words."""


def conf_file_flags(path: str) -> list[str]:
    """The command-line words the lines of ``path`` stand for."""
    try:
        with open(path, encoding="utf-8") as conf:
            lines = conf.readlines()
    except OSError as exc:
        raise ConfFileError(f"cannot read {path}: {exc.strerror}") from None
    words: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = _COMMENT.sub("", raw).strip()
        if not line or line.startswith(("-d", "-h")) or not line.startswith("-"):
            continue
        try:
            words.extend(shlex.split(line.replace("\\#", "#")))
        except ValueError as exc:
            raise ConfFileError(f"{path}: line {number}: {exc}") from None
    return words
