"""The daemon's process: ``-d`` (daemonize), ``-P`` (pid file), ``-u`` (drop root),
``-k`` (lock memory), ``-r`` (core files), as memcached does them.

Called by the CLI after the listeners are bound and files opened, before the event
loop starts: a fork must not happen under a running trio loop, and binding a low port or
a socket in a root-owned directory needs root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import pwd
import resource
import sys

EX_NOUSER = 67  # memcached: "can't find the user %s to switch to"
EX_OSERR = 71


class ProcessError(Exception):
    """A process step failed; ``code`` is the exit status memcached uses for it."""

    def __init__(self, message: str, code: int = EX_OSERR) -> None:
        super().__init__(message)
        self.code = code


def daemonize(keep_stdio: bool = False) -> None:
    """Detach as memcached's daemon() does: fork, setsid, chdir /, stdio to /dev/null
    (kept with ``keep_stdio``, as memcached keeps it at -v).

    The parent exits 0 at once; only the child returns. Called before trio.run.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)
    os.setsid()
    os.chdir("/")
    if keep_stdio:
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def write_pid_file(path: str) -> str | None:
    """Write this process's pid to ``path`` (through ``path.tmp``, renamed into place,
    as memcached does so a reader never sees an empty file). Returns a warning if the
    old file named a running process; raises OSError when the file cannot be written."""
    warning = None
    try:
        with open(path) as old:
            pid = int(old.readline().strip() or "0")
        if pid > 0 and pid != os.getpid():
            os.kill(pid, 0)
            warning = f"The pid file contained the following (running) pid: {pid}"
    except (OSError, ValueError):
        pass
    temporary = f"{path}.tmp"
    with open(temporary, "w") as out:
        out.write(f"{os.getpid()}\n")
    os.rename(temporary, path)
    return warning


def remove_pid_file(path: str) -> str | None:
    """Remove the pid file at exit, if it still names this process. Returns memcached's
    complaint when it cannot be removed (None when removed, gone, or another's)."""
    try:
        with open(path) as current:
            if current.readline().strip() != str(os.getpid()):
                return None
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"Could not remove the pid file {path}: {exc.strerror}"
    return None


def can_write_as(user: str, directory: str) -> bool:
    """Whether ``user`` may create files in ``directory``: asked of a child process that
    drops to ``user`` as the daemon will (so groups and ACLs count). As root only."""
    pid = os.fork()
    if pid == 0:
        try:
            drop_privileges(user)
            allowed = os.access(directory, os.W_OK | os.X_OK)
        except BaseException:
            allowed = False
        os._exit(0 if allowed else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def running_as_root() -> bool:
    return os.getuid() == 0 or os.geteuid() == 0


def user_ids(user: str) -> tuple[int, int]:
    """The uid and primary gid of ``user``; ProcessError (EX_NOUSER) if there is none."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ProcessError(f"can't find the user {user} to switch to", EX_NOUSER) from None
    return entry.pw_uid, entry.pw_gid


def drop_privileges(user: str) -> None:
    """Become ``user``, with its primary and supplementary groups (as root only).

    memcached clears the supplementary groups; taking the user's own groups lets a
    socket directory or memory file shared through a group keep working.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ProcessError(f"can't find the user {user} to switch to", EX_NOUSER) from None
    try:
        os.initgroups(entry.pw_name, entry.pw_gid)
    except OSError as exc:
        if exc.errno != errno.EPERM:  # already minimally privileged: go on, as memcached
            raise ProcessError(f"failed to drop supplementary groups: {exc.strerror}") from None
    try:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError:
        raise ProcessError(f"failed to assume identity of user {user}") from None
    os.environ["HOME"] = entry.pw_dir


def preload_for_user() -> None:
    """Load, while still root, the codecs the daemon looks up later (open(encoding=...)):
    a Python installed where the new user cannot read (a pyenv under /root) could not
    load them after the drop."""
    import encodings.ascii  # noqa: F401
    import encodings.idna  # noqa: F401
    import encodings.latin_1  # noqa: F401


def library_unreadable() -> str | None:
    """After a drop: Python's library directory, if this user cannot read it."""
    library = os.path.dirname(os.__file__)
    return None if os.access(library, os.R_OK | os.X_OK) else library


def enable_coredumps() -> None:
    """``-r``: raise the core file limit to unlimited, else to the hard limit."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        except (ValueError, OSError):
            pass
    if resource.getrlimit(resource.RLIMIT_CORE)[0] == 0:
        raise ProcessError("failed to ensure corefile creation")


_MCL_CURRENT, _MCL_FUTURE = 1, 2


def lock_memory() -> str | None:
    """``-k``: mlockall(MCL_CURRENT | MCL_FUTURE); a warning when it fails, as memcached."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        return f"-k invalid, mlockall() failed: {os.strerror(ctypes.get_errno())}"
    return None
