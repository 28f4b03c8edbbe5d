"""The ``memcachepy`` command: memcached's flags, embedded defaults, 127.0.0.1:11211."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import trio

from memcachepy import VERSION
from memcachepy.config import MIB, ConfigError, Settings, parse_size
from memcachepy.ops.logs import log_level
from memcachepy.server.tls import TlsError, build_server_context
from memcachepy.usage import UsageParser


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="memcachepy",
        description="A memcached-compatible cache daemon. Flags follow memcached's names.",
        epilog="'memcachepy cluster up --nodes N' starts a local cluster instead "
               "(see 'memcachepy cluster --help').",
    )
    p.add_argument("-p", "--port", type=int, default=11211,
                   help="TCP port to listen on (default: 11211; 0 picks a free port)")
    p.add_argument("-U", "--udp-port", type=int, default=0,
                   help="UDP port to listen on (default: 0, off)")
    p.add_argument("-l", "--listen", default="127.0.0.1",
                   help="interface(s) to listen on, comma separated (default: 127.0.0.1)")
    p.add_argument("-m", "--memory-limit", type=int, default=64, metavar="MB",
                   help="item memory in megabytes (default: 64)")
    p.add_argument("-M", "--disable-evictions", action="store_true",
                   help="return an error when memory is exhausted instead of evicting items")
    p.add_argument("-c", "--conn-limit", type=int, default=1024,
                   help="max simultaneous connections (default: 1024)")
    p.add_argument("-I", "--max-item-size", default="1m",
                   help="max size of one item, with k/m suffix (default: 1m)")
    p.add_argument("-f", "--slab-growth-factor", type=float, default=1.25,
                   help="chunk size growth factor between slab classes (default: 1.25)")
    p.add_argument("-n", "--slab-min-size", type=int, default=48,
                   help="min space for key, value and flags in a chunk (default: 48)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="-v: connection events and protocol errors; -vv: also every command "
                        "and reply; -vvv: also internal detail (to stderr)")
    p.add_argument("-A", "--enable-shutdown", action="store_true",
                   help="allow the 'shutdown' command")
    p.add_argument("-F", "--disable-flush-all", action="store_true",
                   help="refuse the 'flush_all' command")
    p.add_argument("-C", "--disable-cas", action="store_true", help="disable CAS values")
    p.add_argument("-B", "--protocol", metavar="NAME",
                   help="protocol: ascii, binary, or auto (default: auto-negotiate; "
                        "ascii with -Y)")
    p.add_argument("-Z", "--enable-ssl", action="store_true",
                   help="TLS on every listener (except -l notls:ADDR); certificates with "
                        "-o ssl_chain_cert=,ssl_key=[,ssl_ca_cert=,ssl_verify_mode=0..3,"
                        "ssl_min_version=tlsv1.2,ssl_ciphers=]")
    p.add_argument("-S", "--enable-sasl", action="store_true",
                   help="SASL PLAIN authentication, binary protocol only; passwords "
                        "(user:password lines) from -o sasl_pwdb=FILE or $MEMCACHED_SASL_PWDB")
    p.add_argument("-Y", "--auth-file", metavar="FILE",
                   help="require ASCII authentication against FILE (user:password lines)")
    p.add_argument("-e", "--memory-file", metavar="PATH",
                   help="keep item memory in this file; a graceful stop (SIGUSR1, "
                        "'shutdown graceful') saves it and the next start restores the items")
    p.add_argument("-o", "--extended", action="append", default=[], metavar="OPT",
                   help="comma separated options: idle_timeout=SECONDS")
    p.add_argument("--cluster-config", metavar="FILE",
                   help="answer ElastiCache's 'config get cluster' with the nodes in FILE "
                        "(re-read on SIGHUP)")
    p.add_argument("--cluster-admin-token-file", metavar="FILE",
                   help="accept 'config set cluster' carrying the token in FILE "
                        "(and save the new nodes to the --cluster-config FILE)")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics at http://LISTEN:PORT/metrics (default: off)")
    p.add_argument("--metrics-listen", default="127.0.0.1", metavar="ADDR",
                   help="address of the metrics endpoint (default: 127.0.0.1)")
    p.add_argument("-V", "--version", action="version", version=f"memcachepy {VERSION}")
    return p


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Settings from command-line arguments; exits with a one-line message when invalid."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            port=args.port,
            listen=args.listen,
            memory_limit=args.memory_limit * MIB,
            evict=not args.disable_evictions,
            max_connections=args.conn_limit,
            item_size_max=parse_size(args.max_item_size),
            growth_factor=args.slab_growth_factor,
            min_chunk=args.slab_min_size,
            verbosity=args.verbose,
            enable_shutdown=args.enable_shutdown,
            flush_enabled=not args.disable_flush_all,
            use_cas=not args.disable_cas,
            auth_file=args.auth_file,
            protocol=_binding_protocol(args.protocol, args.auth_file, args.enable_sasl),
            sasl=args.enable_sasl,
            sasl_pwdb=os.environ.get("MEMCACHED_SASL_PWDB"),
            udp_port=args.udp_port,
            tls_enabled=args.enable_ssl,
            cluster_config=args.cluster_config,
            cluster_admin_token_file=args.cluster_admin_token_file,
            memory_file=args.memory_file,
            metrics_port=args.metrics_port,
            metrics_listen=args.metrics_listen,
        )
        for group in args.extended:
            for option in filter(None, group.split(",")):
                _apply_extended(settings, option)
        settings.validate()
        if settings.tls_enabled:
            build_server_context(settings.tls)  # refuse bad certificates before listening
        _check_cluster_files(settings)
    except (ConfigError, TlsError) as exc:
        parser.error(str(exc))
    return settings


def _binding_protocol(requested: str | None, auth_file: str | None, sasl: bool) -> str:
    """-B as memcached settles it: -Y allows only the text protocol, -S only the binary."""
    if requested is None:
        return "ascii" if auth_file else "binary" if sasl else "auto"
    if auth_file and requested in ("binary", "auto"):
        raise ConfigError("ERROR: You cannot allow the BINARY protocol while using ascii "
                          "authentication tokens.")
    return requested


# memcached's -o suboptions that tune the store (memcachepy.store.tuning).
_STORE_OPTIONS = frozenset({
    "slab_reassign", "no_slab_reassign", "slab_automove", "no_slab_automove",
    "slab_automove_ratio", "slab_automove_window", "lru_crawler", "no_lru_crawler",
    "lru_crawler_sleep", "lru_crawler_tocrawl", "lru_maintainer", "no_lru_maintainer",
    "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor", "temporary_ttl",
    "track_sizes", "modern",
})


def _apply_extended(settings: Settings, option: str) -> None:
    name, _, value = option.partition("=")
    if name == "idle_timeout":
        try:
            settings.idle_timeout = int(value)
        except ValueError:
            raise ConfigError(f"Invalid idle_timeout value: {value!r}") from None
    elif name in _STORE_OPTIONS:
        try:
            settings.store.set_option(name, value if "=" in option else None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    elif name == "sasl_pwdb":
        settings.sasl_pwdb = value
    elif name.startswith("ssl_"):
        try:
            known = settings.tls.set_option(name, value)
        except TlsError as exc:
            raise ConfigError(str(exc)) from None
        if not known:
            raise ConfigError(f"Illegal suboption \"{option}\"")
    else:
        raise ConfigError(f"Illegal suboption \"{option}\"")


def _check_cluster_files(settings: Settings) -> None:
    """Refuse to start with a membership or token file that cannot be used."""
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
    _raise_fd_limit(settings.max_connections)
    from memcachepy.auth.authfile import AuthfileError
    from memcachepy.server.daemon import Server
    from memcachepy.server.operations import MetricsPortError
    from memcachepy.store.persist import MemoryFileError

    try:
        server = Server(settings)
    except (AuthfileError, MemoryFileError) as exc:
        print(f"memcachepy: {exc}", file=sys.stderr)
        return 1
    try:
        trio.run(server.serve)
    except MetricsPortError as exc:  # names the metrics address, not the cache's
        print(f"memcachepy: {exc}", file=sys.stderr)
        return 71
    except OSError as exc:
        print(f"memcachepy: failed to listen on {settings.listen}:{settings.port}: {exc}",
              file=sys.stderr)
        return 71  # EX_OSERR, as memcached exits when it cannot bind
    return 1 if server.save_error else 0


def _raise_fd_limit(max_connections: int) -> None:
    """Allow -c connections plus spare descriptors, as memcached raises RLIMIT_NOFILE."""
    import resource

    wanted = max_connections + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            logging.getLogger("memcachepy").warning(
                "cannot raise the open files limit to %d for -c %d", wanted, max_connections)
