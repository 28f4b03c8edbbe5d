"""The ``memcachepy`` command: memcached's flags, embedded defaults, 127.0.0.1:11211."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial

import trio

from memcachepy import VERSION
from memcachepy.config import EX_USAGE, MIB, ConfigError, Settings
from memcachepy.native.switch import running_build
from memcachepy.ops.logs import log_level
from memcachepy.ops.process import (
    EX_OSERR,
    ProcessError,
    can_write_as,
    daemonize,
    drop_privileges,
    enable_coredumps,
    library_unreadable,
    lock_memory,
    preload_for_user,
    remove_pid_file,
    running_as_root,
    user_ids,
    write_pid_file,
)
from memcachepy.ops.systemd import activated_listeners
from memcachepy.server.daemon import Server, hold_stop_signals
from memcachepy.server.listeners import (
    BoundListeners,
    add_listen_address,
    bind_listeners,
    parse_listen,
    write_port_file,
)
from memcachepy.server.tls import TlsError, build_server_context
from memcachepy.suboptions import apply_suboptions
from memcachepy.usage import (
    DEBIAN_CONF,
    EXTENDED_HELP,
    ConfFileError,
    DaemonUsageParser,
    conf_file_flags,
)

# What -i prints after the version, as memcached prints its licence: the text of the
# repository's LICENSE file, kept here because an installed wheel has no such file
# beside the package (tests/test_cli.py checks that the two are the same).
LICENSE = """\
BSD 3-Clause License

Copyright (c) 2026, the memcachepy developers
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def build_parser() -> DaemonUsageParser:
    p = DaemonUsageParser(
        prog="memcachepy",
        description="A memcached-compatible cache daemon. Flags follow memcached 1.6.18's "
        "names and defaults, except that it listens on 127.0.0.1.",
        epilog=EXTENDED_HELP + "\n'memcachepy cluster up --nodes N' starts a local cluster "
        "instead (see 'memcachepy cluster --help').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    add = p.add_argument
    # Not argparse's help action, which prints at once: the flags given with -h (and the
    # --config-file) are checked first, so that "-h" checks a configuration.
    add(
        "-h",
        "--help",
        action="store_true",
        help="check the other flags given (and the --config-file) as a start would, then "
        "print this help and exit",
    )
    add(
        "-p",
        "--port",
        type=int,
        default=None,
        help="TCP port to listen on (default: 11211; 0: TCP off; -1: a free port)",
    )
    add(
        "-U",
        "--udp-port",
        type=int,
        default=None,
        help="UDP port to listen on (default: 0, off; -1: a free port)",
    )
    add(
        "-s",
        "--unix-socket",
        metavar="FILE",
        help="UNIX socket to listen on (disables network support)",
    )
    add(
        "-a",
        "--unix-mask",
        default="700",
        metavar="MASK",
        help="access mask for UNIX socket, in octal (default: 700)",
    )
    add("-A", "--enable-shutdown", action="store_true", help='enable ascii "shutdown" command')
    add(
        "-l",
        "--listen",
        action="append",
        metavar="ADDR",
        help="interface to listen on (default: 127.0.0.1); repeat or comma-separate for "
        "several; 'notls:ADDR' stays plain under -Z",
    )
    add("-d", "--daemon", action="store_true", help="run as a daemon")
    add("-r", "--enable-coredumps", action="store_true", help="maximize core file limit")
    add(
        "-u",
        "--user",
        metavar="USER",
        help="assume identity of USER after binding (only when run as root)",
    )
    add(
        "-m",
        "--memory-limit",
        type=int,
        default=64,
        metavar="MB",
        help="item memory in megabytes (default: 64)",
    )
    add(
        "-M",
        "--disable-evictions",
        action="store_true",
        help="return error on memory exhausted instead of evicting",
    )
    add(
        "-c",
        "--conn-limit",
        type=int,
        default=1024,
        help="max simultaneous connections (default: 1024)",
    )
    add("-k", "--lock-memory", action="store_true", help="lock down all paged memory")
    add(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: connection events, protocol errors and notes on flags; -vv: also "
        "every command and reply; -vvv: also internal detail (to stderr)",
    )
    add("-i", "--license", action="store_true", help="print the license and exit")
    add(
        "-V",
        "--version",
        action="version",
        version=f"memcachepy {VERSION} ({running_build()})",
        help="print the version and the build that runs (compiled or pure) and exit",
    )
    add("-P", "--pidfile", metavar="FILE", help="save PID in FILE, only used with -d option")
    add(
        "-f",
        "--slab-growth-factor",
        type=float,
        default=1.25,
        help="chunk size growth factor (default: 1.25)",
    )
    add(
        "-n",
        "--slab-min-size",
        type=int,
        default=48,
        help="min space used for key+value+flags (default: 48)",
    )
    add(
        "-L",
        "--enable-largepages",
        action="store_true",
        help="accepted (no large pages here; noted at -v)",
    )
    add(
        "-D",
        dest="delimiter",
        metavar="CHAR",
        help="prefix delimiter for per-prefix stats; turns them on ('stats detail on')",
    )
    add(
        "-t",
        "--threads",
        type=int,
        default=None,
        help="accepted (default: 4): one event loop serves every connection here (noted at -v)",
    )
    add(
        "-R",
        "--max-reqs-per-event",
        type=int,
        default=20,
        help="requests one connection runs before others get a turn (default: 20)",
    )
    add("-C", "--disable-cas", action="store_true", help="disable use of CAS")
    add(
        "-b",
        "--listen-backlog",
        type=int,
        default=1024,
        help="set the backlog queue limit (default: 1024)",
    )
    add(
        "-B",
        "--protocol",
        metavar="NAME",
        help="protocol - one of ascii, binary, or auto (default: auto-negotiate; ascii with -Y)",
    )
    add(
        "-I",
        "--max-item-size",
        default="1m",
        help="max item size (default: 1m, min: 1k, max: 1024m)",
    )
    add(
        "-S",
        "--enable-sasl",
        action="store_true",
        help="turn on SASL PLAIN authentication, binary protocol only; passwords "
        "(user:password lines) from -o sasl_pwdb=FILE or $MEMCACHED_SASL_PWDB",
    )
    add("-F", "--disable-flush-all", action="store_true", help="disable flush_all command")
    add(
        "-X",
        "--disable-dumping",
        action="store_true",
        help="disable stats cachedump and lru_crawler metadump",
    )
    add("-W", "--disable-watch", action="store_true", help="disable watch commands")
    add(
        "-Y",
        "--auth-file",
        metavar="FILE",
        help="require ASCII authentication against FILE (user:password lines)",
    )
    add(
        "-e",
        "--memory-file",
        metavar="PATH",
        help="keep item memory in this file; a graceful stop (SIGUSR1, 'shutdown "
        "graceful') saves it and the next start restores the items",
    )
    add(
        "-Z",
        "--enable-ssl",
        action="store_true",
        help="enable TLS/SSL on every listener (except -l notls:ADDR); certificates with "
        "-o ssl_chain_cert=,ssl_key=",
    )
    add(
        "-o",
        "--extended",
        action="append",
        default=[],
        metavar="OPT",
        help="comma separated list of extended options (listed below)",
    )
    add("-N", "--napi-ids", type=int, metavar="NUM", help="accepted (noted at -v)")
    add(
        "--config-file",
        nargs="?",
        const=DEBIAN_CONF,
        metavar="FILE",
        help=f"read flags from FILE first, a line of flags at a time, as Debian's "
        f"memcached reads {DEBIAN_CONF} (the default FILE); -d lines are skipped",
    )
    add(
        "--cluster-config",
        metavar="FILE",
        help="answer ElastiCache's 'config get cluster' with the nodes in FILE (re-read on SIGHUP)",
    )
    add(
        "--cluster-admin-token-file",
        metavar="FILE",
        help="accept 'config set cluster' carrying the token in FILE "
        "(and save the new nodes to the --cluster-config FILE)",
    )
    add(
        "--cluster-replicas",
        type=int,
        default=1,
        metavar="R",
        help="copies the cluster clients keep of each key; with R >= 2 a node that starts "
        "empty copies its share from the other nodes (default: 1)",
    )
    add(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="do not copy items from the other nodes when starting empty",
    )
    add(
        "--warm-up-rate",
        type=int,
        default=10_000,
        metavar="ITEMS",
        help="items copied per second at most while warming up (default: 10000)",
    )
    add(
        "--cluster-dns",
        metavar="NAME",
        help="take the membership from DNS: SRV records for a name starting with '_', "
        "else A/AAAA records with this node's port",
    )
    add(
        "--cluster-dns-server",
        metavar="HOST:PORT",
        help="ask this DNS server for --cluster-dns (default: the system's resolver)",
    )
    add(
        "--cluster-dns-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between DNS polls for --cluster-dns (default: 60)",
    )
    add(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://LISTEN:PORT/metrics (default: off)",
    )
    add(
        "--metrics-listen",
        default="127.0.0.1",
        metavar="ADDR",
        help="address of the metrics endpoint (default: 127.0.0.1)",
    )
    return p


# memcached's "return 1" checks, made while it reads the flags (the rest exit 64).
_BAD_VALUE = 1


def _flag_checks(args: argparse.Namespace) -> None:
    if args.conn_limit <= 0:
        raise ConfigError("Maximum connections must be greater than 0", _BAD_VALUE)
    if args.max_reqs_per_event == 0:
        raise ConfigError("Number of requests per event must be greater than 0", _BAD_VALUE)
    if args.slab_growth_factor <= 1.0:
        raise ConfigError("Factor must be greater than 1", _BAD_VALUE)
    if args.slab_min_size == 0:
        raise ConfigError("Chunk size must be greater than 0", _BAD_VALUE)
    if args.threads <= 0:
        raise ConfigError("Number of threads must be greater than 0", _BAD_VALUE)
    if args.delimiter is not None and not args.delimiter:
        raise ConfigError("No delimiter specified", _BAD_VALUE)
    if args.napi_ids is not None and args.napi_ids <= 0:
        raise ConfigError("Maximum number of NAPI IDs must be greater than 0", _BAD_VALUE)
    if args.napi_ids is not None and args.napi_ids > args.threads:
        raise ConfigError(
            f"Number of napi_ids({args.napi_ids}) cannot be greater than "
            f"number of threads({args.threads})"
        )


def _ports_in_listen(addresses: list[str] | None) -> bool:
    listen = _listen(addresses)
    return any(port for _, port, _ in parse_listen(listen, 0))


def _listen(addresses: list[str] | None) -> str:
    listen = ""
    for address in addresses or ["127.0.0.1"]:
        listen = add_listen_address(listen, address)
    return listen


def _item_size(text: str) -> int:
    """-I as memcached reads it: a number with an optional k/m suffix (atoi's digits)."""
    unit = text[-1:].lower()
    digits = text[:-1] if unit in ("k", "m") else text
    if not digits.isdigit():
        raise ConfigError(f"invalid -I value: {text!r}")
    return int(digits) * {"k": 1024, "m": MIB}.get(unit, 1)


# Flags whose value goes into Settings as it is: argparse dest -> Settings field.
_COPIED = {
    "conn_limit": "max_connections",
    "slab_growth_factor": "growth_factor",
    "slab_min_size": "min_chunk",
    "verbose": "verbosity",
    "enable_shutdown": "enable_shutdown",
    "auth_file": "auth_file",
    "enable_sasl": "sasl",
    "enable_ssl": "tls_enabled",
    "cluster_config": "cluster_config",
    "cluster_admin_token_file": "cluster_admin_token_file",
    "cluster_replicas": "cluster_replicas",
    "warm_up": "warm_up",
    "warm_up_rate": "warm_up_rate",
    "cluster_dns": "cluster_dns",
    "cluster_dns_server": "cluster_dns_server",
    "cluster_dns_interval": "cluster_dns_interval",
    "memory_file": "memory_file",
    "metrics_port": "metrics_port",
    "metrics_listen": "metrics_listen",
    "unix_socket": "unix_socket",
    "listen_backlog": "backlog",
    "max_reqs_per_event": "reqs_per_event",
    "user": "user",
    "daemon": "daemonize",
    "pidfile": "pid_file",
    "lock_memory": "lock_memory",
    "enable_coredumps": "coredumps",
    "threads": "threads",
    "enable_largepages": "large_pages",
    "napi_ids": "napi_ids",
}


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Settings from command-line arguments; exits with a one-line message when invalid."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        conf = parser.parse_known_args(words)[0].config_file
        if conf:
            words = conf_file_flags(conf) + words
    except ConfFileError as exc:
        parser.fail(str(exc), _BAD_VALUE)
    args = parser.parse_args(words)
    if args.license and not args.help:
        print(f"memcachepy {VERSION}\n\n{LICENSE}", end="")
        raise SystemExit(0)
    threads_given = args.threads is not None
    if not threads_given:
        args.threads = 4  # memcached's default, reported by stats settings
    try:
        _flag_checks(args)
        port = 11211 if args.port is None else args.port
        udp = 0 if args.udp_port is None else args.udp_port
        if args.udp_port and args.port is None:
            port = udp  # memcached: -U alone moves the TCP port along with it
        settings = Settings(
            port=max(port, 0),
            # -p 0 turns TCP off, as in memcached, unless an -l address carries its port.
            tcp_enabled=port != 0 or _ports_in_listen(args.listen),
            listen=_listen(args.listen),
            memory_limit=args.memory_limit * MIB,
            evict=not args.disable_evictions,
            item_size_max=_item_size(args.max_item_size),
            flush_enabled=not args.disable_flush_all,
            use_cas=not args.disable_cas,
            protocol=_binding_protocol(args.protocol, args.auth_file, args.enable_sasl),
            sasl_pwdb=os.environ.get("MEMCACHED_SASL_PWDB"),
            udp_port=udp,
            unix_mask=_octal(args.unix_mask),
            dump_enabled=not args.disable_dumping,
            watch_enabled=not args.disable_watch,
            detail_enabled=args.delimiter is not None,
            prefix_delimiter=(args.delimiter or ":")[0],
            **{name: getattr(args, dest) for dest, name in _COPIED.items()},
        )
        chunk_max_given = apply_suboptions(settings, args.extended)
        store = settings.store
        if settings.item_size_max > MIB and not chunk_max_given:
            store.slab_chunk_max = MIB // 2  # memcached's rule for -I over 1m
        elif (
            not chunk_max_given
            and settings.item_size_max < store.slab_chunk_max
            and MIB % settings.item_size_max == 0
        ):
            # memcached refuses -I below its 512 KiB chunk unless slab_chunk_max is lowered
            # too; memcachepy lowers it for you.
            store.slab_chunk_max = settings.item_size_max
            settings.notes.append(
                f"-I {args.max_item_size}: slab_chunk_max lowered to "
                f"{store.slab_chunk_max} (memcached would refuse)"
            )
        settings.notes[:0] = _flag_notes(settings, threads_given)
        settings.validate()
        if settings.tls_enabled:
            build_server_context(settings.tls)  # refuse bad certificates before listening
        _check_cluster_files(settings)
        if args.help and settings.user and running_as_root():
            user_ids(settings.user)  # a start as root looks the user up first thing
    except (ConfigError, TlsError) as exc:
        parser.fail(str(exc), getattr(exc, "code", EX_USAGE))
    except ProcessError as exc:
        parser.fail(str(exc), exc.code)
    if args.help:
        parser.print_help()
        raise SystemExit(0)
    return settings


def _octal(text: str) -> int:
    """-a as memcached's strtol(optarg, NULL, 8) reads it: leading octal digits, else 0."""
    digits = ""
    for char in text.strip():
        if char not in "01234567":
            break
        digits += char
    return int(digits, 8) & 0o777 if digits else 0


def _flag_notes(settings: Settings, threads_given: bool) -> list[str]:
    """One line for each flag accepted without effect here (logged at -v)."""
    notes = []
    if threads_given:
        notes.append(
            f"-t {settings.threads}: one event loop serves every connection here "
            "(stats report threads 1); run several daemons to use more cores"
        )
    if settings.large_pages:
        notes.append("-L: no large pages here; item memory is allocated page by page")
    if settings.napi_ids:
        notes.append("-N: NAPI-based thread selection has no meaning with one event loop")
    return notes


def _binding_protocol(requested: str | None, auth_file: str | None, sasl: bool) -> str:
    """-B as memcached settles it: -Y allows only the text protocol, -S only the binary."""
    if requested is None:
        return "ascii" if auth_file else "binary" if sasl else "auto"
    if auth_file and requested in ("binary", "auto"):
        raise ConfigError(
            "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens."
        )
    return requested


def _check_cluster_files(settings: Settings) -> None:
    """Refuse to start with a membership or token file that cannot be used."""
    if settings.cluster_dns:
        import dns.resolver  # noqa: F401  (dnspython: missing, it stops the start here)
    if settings.cluster_dns_server:
        from memcachepy.cluster.dns import parse_nameserver

        try:
            parse_nameserver(settings.cluster_dns_server)
        except ValueError as exc:
            raise ConfigError(f"--cluster-dns-server: {exc}") from None
    if not settings.cluster_config:
        return
    from memcachepy.cluster.endpoint import load_endpoint

    try:
        load_endpoint(settings.cluster_config, settings.cluster_admin_token_file)
    except ValueError as exc:
        raise ConfigError(f"cluster config: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["cluster"]:  # `memcachepy cluster up ...`: a local cluster, not a daemon
        from memcachepy.cluster.devcluster import main as cluster_main

        return cluster_main(args[1:])
    settings = settings_from_args(args)
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level(settings.verbosity),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    log = logging.getLogger("memcachepy")
    for note in settings.notes:
        log.info("%s", note)
    if not _raise_fd_limit(settings.max_connections):
        print(RLIMIT_REFUSED, file=sys.stderr)
        return EX_OSERR
    from memcachepy.auth.authfile import AuthfileError
    from memcachepy.store.extstore_pages import ExtstoreError
    from memcachepy.store.persist import MemoryFileError

    if settings.extstore.enabled and settings.memory_file:
        # memcached 1.6.18 says so and starts without restoring (or keeping) memory.
        print("[restart] memory restart with extstore not presently supported.", file=sys.stderr)
        settings.memory_file = None
    try:
        server = Server(settings)
    except (AuthfileError, MemoryFileError) as exc:
        print(f"memcachepy: {exc}", file=sys.stderr)
        return 1
    except ExtstoreError as exc:
        print(f"Failed to initialize external storage: {exc}", file=sys.stderr)
        return 1
    hold_stop_signals()
    try:
        bound = bind_listeners(settings, activated_listeners())
    except (OSError, ValueError) as exc:
        where = settings.unix_socket or f"{settings.listen}:{settings.port}"
        print(f"memcachepy: failed to listen on {where}: {exc}", file=sys.stderr)
        return EX_OSERR  # as memcached exits when it cannot bind
    try:
        root_warning = _become_daemon(settings, bound, log)
    except ProcessError as exc:
        bound.close()
        print(f"memcachepy: {exc}", file=sys.stderr)
        return exc.code
    port_file = os.environ.get("MEMCACHED_PORT_FILENAME")
    if port_file:
        write_port_file(port_file, bound.sockets, bound.udp)
    try:
        trio.run(partial(server.serve, bound=bound, task_status=_WarnWhenServing(root_warning)))
    except OSError as exc:  # the metrics port (MetricsPortError names its address)
        print(f"memcachepy: {exc}", file=sys.stderr)
        return EX_OSERR
    finally:
        bound.unlink_unix()
        if settings.pid_file and settings.daemonize:
            problem = remove_pid_file(settings.pid_file)
            if problem:
                log.warning("%s", problem)
    return 1 if server.save_error else 0  # a failed -e save (logged by the server)


class _WarnWhenServing:
    """A task status that logs the root warning once the server serves, so that a start
    that fails (a busy port) says only why it failed."""

    def __init__(self, warning: str | None) -> None:
        self.warning = warning

    def started(self, value: object = None) -> None:
        if self.warning:
            logging.getLogger("memcachepy").warning("%s", self.warning)


def _become_daemon(settings: Settings, bound: BoundListeners, log: logging.Logger) -> str | None:
    """After the sockets are bound: core limit (-r), fork (-d), memory lock (-k), drop root
    (-u), then the pid file (-P, holding the daemon's pid).

    memcached writes its pid file as the user it runs as, so the daemon can remove it at
    exit wherever it could write it; so does memcachepy. Returns the warning to log once
    serving, when running as root without ``-u``.
    """
    root_warning = None
    if running_as_root() and not settings.user:
        # memcached refuses to start as root without -u; memcachepy keeps starting so
        # that a one-command start works in root containers, but says so loudly.
        root_warning = (
            "running as root without -u: anyone who breaks into the daemon "
            "gets root; start it with -u USER (e.g. -u memcache)"
        )
    if settings.coredumps:
        enable_coredumps()
    user = settings.user if running_as_root() else None
    if user:
        uid, gid = user_ids(user)  # an unknown user fails here, before -d detaches
    if settings.daemonize:
        if root_warning:
            log.warning("%s", root_warning)  # while stderr is still the terminal
            root_warning = None
        if settings.pid_file:
            # Where the command was started, not / where the daemon moves.
            settings.pid_file = os.path.abspath(settings.pid_file)
        if settings.pid_file and user:
            directory = os.path.dirname(settings.pid_file)
            if not can_write_as(user, directory):
                # Said before the fork: the daemon's own complaint goes to /dev/null.
                log.error(
                    "user %s cannot create files in %s: no pid file will be written",
                    user,
                    directory,
                )
        daemonize(keep_stdio=settings.verbosity > 0)  # as memcached's daemon(0, verbose)
    if settings.lock_memory:
        warning = lock_memory()
        if warning:
            log.warning("%s", warning)
    if user:
        # memcached makes its UNIX socket after dropping root; giving ours to the user
        # has the same effect (the user can remove it, clients see the user's socket).
        for path in bound.unix_files:
            os.chown(path, uid, gid)
        preload_for_user()
        drop_privileges(user)
        log.info("running as user %s", user)
        unreadable = library_unreadable()
        if unreadable:
            log.warning(
                "user %s cannot read Python's library at %s: modules loaded later "
                "may fail; install memcachepy where that user can read it",
                user,
                unreadable,
            )
    if settings.daemonize and settings.pid_file:
        try:
            warning = write_pid_file(settings.pid_file)
        except OSError as exc:
            log.error(
                "Could not open the pid file %s for writing: %s", settings.pid_file, exc.strerror
            )
        else:
            if warning:
                log.warning("%s", warning)
    return root_warning


# Descriptors beyond -c that the daemon itself holds: listeners, the epoll set, the log,
# the memory file, the metrics endpoint, and a margin for a burst of accepts.
FD_SPARE = 64

RLIMIT_REFUSED = (
    "failed to set rlimit for open files. Try starting as root or requesting smaller "
    "maxconns value."
)


def _raise_fd_limit(max_connections: int) -> bool:
    """Make room for -c connections, as memcached does, or say why not (False).

    memcached 1.6.18 sets both limits to -c and, when the kernel refuses (an unprivileged
    process cannot raise its hard limit), prints RLIMIT_REFUSED and exits: without the
    descriptors, connections past the limit would wait unaccepted in the backlog forever.
    We ask for FD_SPARE more than -c; a hard limit between -c and that still starts, as
    memcached would, with a warning.
    """
    import resource

    log = logging.getLogger("memcachepy")
    infinity = resource.RLIM_INFINITY
    wanted = max_connections + FD_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity or soft >= wanted:
        return True
    tries = [(wanted, hard)] if hard == infinity or hard >= wanted else [(wanted, wanted)]
    if hard != infinity and max_connections <= hard < wanted:
        tries.append((hard, hard))
    for limits in tries:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        except (ValueError, OSError):
            continue
        if limits[0] < wanted:
            log.warning(
                "open files limited to %d: -c %d leaves fewer than %d descriptors spare",
                limits[0],
                max_connections,
                FD_SPARE,
            )
        return True
    return False
