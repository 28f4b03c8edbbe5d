"""Daemon settings with memcached's names and defaults (but listening on 127.0.0.1)."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field

from memcachepy.store.extstore_config import ExtstoreConfig
from memcachepy.store.tuning import StoreTuning

DEFAULT_PORT = 11211
# -B values, and what `stats settings` calls each (memcached's binding_protocol).
PROTOCOLS = {"auto": "auto-negotiate", "ascii": "ascii", "binary": "binary"}
MIB = 1024 * 1024


EX_USAGE = 64


class ConfigError(ValueError):
    """A setting has a value memcached would refuse; the message is one line.

    ``code`` is the exit status memcached gives for it: 1 for most bad flag values, 64
    (EX_USAGE) for the checks it makes after reading all flags.
    """

    def __init__(self, message: str, code: int = EX_USAGE) -> None:
        super().__init__(message)
        self.code = code


# memcached's ssl_verify_mode values.
VERIFY_NONE = 0
VERIFY_REQUEST = 1  # ask for a client certificate, accept without one
VERIFY_REQUIRE = 2  # refuse clients without a valid certificate
VERIFY_ONCE = 3  # memcached: require on the first handshake (no renegotiation here: = 2)

TLS_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsError(ValueError):
    """TLS cannot be set up from these settings; the message is one line."""


@dataclass(slots=True)
class TlsSettings:
    """memcached's ``-o ssl_*`` options."""

    chain_cert: str | None = None
    key: str | None = None
    ca_cert: str | None = None
    verify_mode: int = VERIFY_NONE
    min_version: str = "tlsv1.2"
    ciphers: str | None = None
    # ssl_keyformat, ssl_wbuf_size, ssl_session_cache, ssl_kernel_tls: accepted and
    # reported; Python's ssl module manages buffers, sessions and offload itself.
    accepted: dict[str, str] = field(default_factory=dict)

    def set_option(self, name: str, value: str) -> bool:
        """Apply ``ssl_<name>=value``; False if ``name`` is not a TLS option."""
        if name == "ssl_chain_cert":
            self.chain_cert = value
        elif name == "ssl_key":
            self.key = value
        elif name == "ssl_ca_cert":
            self.ca_cert = value
        elif name == "ssl_verify_mode":
            if value not in ("0", "1", "2", "3"):
                raise TlsError(f"ssl_verify_mode must be 0..3, not {value!r}")
            self.verify_mode = int(value)
        elif name == "ssl_min_version":
            # memcached takes 0..3; memcachepy also takes the names.
            value = {"0": "tlsv1", "1": "tlsv1.1", "2": "tlsv1.2", "3": "tlsv1.3"}.get(value, value)
            if value.lower() not in TLS_VERSIONS:
                raise TlsError(f"ssl_min_version must be one of {', '.join(TLS_VERSIONS)}")
            self.min_version = value.lower()
        elif name == "ssl_ciphers":
            self.ciphers = value
        elif name in ("ssl_keyformat", "ssl_wbuf_size"):
            if not value.isdigit():
                raise TlsError(f"could not parse argument to {name}")
            self.accepted[name] = value
        elif name in ("ssl_session_cache", "ssl_kernel_tls"):
            self.accepted[name] = "yes"
        else:
            return False
        return True


@dataclass(slots=True)
class Settings:
    port: int = DEFAULT_PORT
    listen: str = "127.0.0.1"
    memory_limit: int = 64 * MIB  # bytes (-m is given in megabytes)
    evict: bool = True  # -M turns eviction off
    max_connections: int = 1024
    item_size_max: int = MIB
    growth_factor: float = 1.25
    min_chunk: int = 48
    verbosity: int = 0
    enable_shutdown: bool = False
    flush_enabled: bool = True
    use_cas: bool = True
    idle_timeout: int = 0  # seconds; 0 = never
    memory_file: str | None = None  # -e: slab memory in this file, for warm restarts
    store: StoreTuning = field(default_factory=StoreTuning)  # LRU, crawler, slab moves (-o)
    extstore: ExtstoreConfig = field(default_factory=ExtstoreConfig)  # extstore (-o ext_*)
    protocol: str = "auto"  # -B: ascii, binary, or auto (by each connection's first byte)
    udp_port: int = 0  # -U: 0 = no UDP listener (memcached's default since 1.5.6)
    sasl: bool = False  # -S: binary protocol only, SASL PLAIN against sasl_pwdb
    sasl_pwdb: str | None = None  # -o sasl_pwdb=FILE, else $MEMCACHED_SASL_PWDB
    auth_file: str | None = None  # -Y: memcached's ASCII authentication
    tls_enabled: bool = False  # -Z
    tls: TlsSettings = field(default_factory=TlsSettings)
    drain_timeout: float = 10.0  # seconds a graceful stop waits for in-flight requests
    cluster_config: str | None = None  # membership file answered to `config get cluster`
    cluster_admin_token_file: str | None = None  # enables `config set cluster`
    cluster_replicas: int = 1  # --cluster-replicas: copies the clients keep of each key (R)
    warm_up: bool = True  # --no-warm-up: an empty node with R >= 2 does not copy from peers
    warm_up_rate: int = 10_000  # --warm-up-rate: items copied per second at most
    cluster_dns: str | None = None  # --cluster-dns NAME: the membership from DNS records
    cluster_dns_server: str | None = None  # --cluster-dns-server HOST:PORT (else the system's)
    cluster_dns_interval: float = 60.0  # --cluster-dns-interval: seconds between DNS polls
    metrics_port: int | None = None  # --metrics-port: Prometheus /metrics (None = off)
    metrics_listen: str = "127.0.0.1"  # --metrics-listen: loopback unless told otherwise
    # -- listeners (memcachepy.server.listeners) ------------------------------------------
    tcp_enabled: bool = True  # -p 0 turns TCP off, as in memcached (-p -1: a free port)
    unix_socket: str | None = None  # -s: a UNIX socket instead of TCP and UDP
    unix_mask: int = 0o700  # -a: the socket file's mode
    backlog: int = 1024  # -b: listen() backlog
    reqs_per_event: int = 20  # -R: requests one connection may run before others go
    # -- the process (memcachepy.ops.process) ---------------------------------------------
    user: str | None = None  # -u: drop root to this user after binding
    daemonize: bool = False  # -d
    pid_file: str | None = None  # -P (memcached writes it only with -d; so do we)
    lock_memory: bool = False  # -k
    coredumps: bool = False  # -r
    # -- accepted for compatibility; see `notes` ------------------------------------------
    threads: int = 4  # -t: one event loop serves everything here (stats show the truth)
    large_pages: bool = False  # -L
    napi_ids: int | None = None  # -N
    dump_enabled: bool = True  # -X turns off `stats cachedump` and `lru_crawler metadump`
    watch_enabled: bool = True  # -W turns off `watch`
    detail_enabled: bool = False  # -D or `stats detail on`: per-prefix stats
    prefix_delimiter: str = ":"  # -D CHAR
    maxconns_fast: bool = True  # -o maxconns_fast / no_maxconns_fast
    hashpower_init: int = 0  # -o hashpower=N (also in store.hashpower_init)
    hash_expand: bool = True  # -o no_hashexpand
    tail_repair_time: int = 0  # -o tail_repair_time=S (no refcount leaks to repair here)
    hash_algorithm: str = "murmur3"  # -o hash_algorithm (reported; Python hashes keys)
    watcher_logbuf_size: int = 256 * 1024  # -o watcher_logbuf_size (KiB on the command line)
    worker_logbuf_size: int = 64 * 1024  # -o worker_logbuf_size (KiB)
    read_buf_mem_limit: int = 0  # -o read_buf_mem_limit (MiB; 0 = unlimited)
    # -o conn_mem_limit: bytes of partial requests and unsent replies held across
    # connections (MiB on the command line; None: half of -m; 0: no bound).
    conn_mem_limit: int | None = None
    drop_privileges: bool = False  # -o drop_privileges (memcached's seccomp filter)
    # One line each for the flags accepted without effect here, logged at -v.
    notes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Refuse combinations memcached refuses, with its reasons."""
        if self.port > 65535:
            raise ConfigError(f"ERROR: Invalid port number {self.port}.")
        if self.port < 0:
            raise ConfigError(f"port {self.port} out of range")
        if self.max_connections <= 0:
            raise ConfigError("Maximum connections must be greater than 0")
        if self.growth_factor <= 1.0:
            raise ConfigError("Factor must be greater than 1")
        if self.min_chunk <= 0:
            raise ConfigError("Chunk size must be greater than 0")
        if self.item_size_max < 1024:
            raise ConfigError("Item max size cannot be less than 1024 bytes.")
        if self.item_size_max > self.memory_limit // 2:
            raise ConfigError("Cannot set item size limit higher than 1/2 of memory max.")
        if self.item_size_max > 1024 * MIB:
            raise ConfigError("Cannot set item size limit higher than a gigabyte.")
        self._validate_chunk_max()
        if self.memory_limit < MIB:
            raise ConfigError("memory limit must be at least 1 megabyte")
        if self.idle_timeout < 0:
            raise ConfigError("idle_timeout must be 0 or more seconds")
        try:
            self.store.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"Invalid value for binding protocol: {self.protocol}"
                " -- should be one of auto, binary, or ascii"
            )
        if not -1 <= self.udp_port <= 65535:
            raise ConfigError(f"UDP port {self.udp_port} out of range")
        if self.sasl and self.protocol != "binary":
            raise ConfigError("ERROR: You cannot allow the ASCII protocol while using SASL.")
        if self.sasl and self.udp_port:
            raise ConfigError("ERROR: Cannot enable UDP while using binary SASL authentication.")
        if self.sasl and not self.sasl_pwdb:
            raise ConfigError(
                "ERROR: -S needs a password file: -o sasl_pwdb=FILE or MEMCACHED_SASL_PWDB"
            )
        if self.sasl and self.auth_file:
            raise ConfigError("ERROR: -S (SASL) and -Y (ASCII authentication) exclude each other")
        if self.udp_port and self.auth_file:
            # memcached lets UDP requests skip -Y's authentication; refuse the pair instead.
            raise ConfigError("ERROR: Cannot enable UDP while using ascii authentication.")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port {self.metrics_port} out of range")
        if self.cluster_admin_token_file and not self.cluster_config:
            raise ConfigError("--cluster-admin-token-file needs --cluster-config")
        self._validate_cluster()
        if self.tls_enabled and not (self.tcp_enabled and not self.unix_socket):
            raise ConfigError("ERROR: You cannot enable SSL without a TCP port.")
        ext_problem = self.extstore.check(self.item_size_max, self.udp_port)
        if ext_problem is not None:
            raise ConfigError(ext_problem)
        self.extstore.apply_defaults()

    def _validate_cluster(self) -> None:
        if self.cluster_replicas < 1:
            raise ConfigError("--cluster-replicas must be at least 1")
        if self.warm_up_rate < 1:
            raise ConfigError("--warm-up-rate must be at least 1 item per second")
        if self.cluster_dns and self.cluster_config:
            raise ConfigError("--cluster-dns and --cluster-config exclude each other")
        if self.cluster_dns_server and not self.cluster_dns:
            raise ConfigError("--cluster-dns-server needs --cluster-dns")
        if self.cluster_dns_interval <= 0:
            raise ConfigError("--cluster-dns-interval must be positive")
        if self.cluster_replicas > 1 and not (self.cluster_config or self.cluster_dns):
            raise ConfigError(
                "--cluster-replicas needs the membership: --cluster-config or --cluster-dns"
            )

    def _validate_chunk_max(self) -> None:
        chunk, item = self.store.slab_chunk_max, self.item_size_max
        if chunk <= 0:
            raise ConfigError(
                f"slab_chunk_max (bytes: {chunk}) must divide evenly into {MIB} (slab_page_size)"
            )
        if chunk > item:
            raise ConfigError(
                f"slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {item})"
            )
        if item % chunk:
            raise ConfigError(
                f"-I (item_size_max: {item}) must be evenly divisible by "
                f"slab_chunk_max (bytes: {chunk})"
            )
        if MIB % chunk:
            raise ConfigError(
                f"slab_chunk_max (bytes: {chunk}) must divide evenly into {MIB} (slab_page_size)"
            )


_SIZE = re.compile(r"^([0-9]+)([kKmMgG]?)$")


def parse_size(text: str) -> int:
    """A byte count with memcached's optional k/m/g suffix (``-I 1m``)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ConfigError(f"invalid size: {text!r}")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit]
