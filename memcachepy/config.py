"""Daemon settings with memcached's names and defaults (but listening on 127.0.0.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memcachepy.tls import TlsSettings

DEFAULT_PORT = 11211
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value memcached would refuse; the message is one line."""


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
    auth_file: str | None = None  # -Y: memcached's ASCII authentication
    tls_enabled: bool = False  # -Z
    tls: TlsSettings = field(default_factory=TlsSettings)
    drain_timeout: float = 10.0  # seconds a graceful stop waits for in-flight requests
    cluster_config: str | None = None  # membership file answered to `config get cluster`
    cluster_admin_token_file: str | None = None  # enables `config set cluster`

    def validate(self) -> None:
        """Refuse combinations memcached refuses, with its reasons."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} out of range")
        if self.max_connections <= 0:
            raise ConfigError("Maximum connections must be greater than 0")
        if self.growth_factor <= 1.0:
            raise ConfigError("Factor must be greater than 1")
        if self.min_chunk <= 0:
            raise ConfigError("Chunk size must be greater than 0")
        if self.item_size_max < 1024:
            raise ConfigError("Item max size cannot be less than 1024 bytes.")
        if self.item_size_max > 1024 * MIB:
            raise ConfigError("Cannot set item size limit higher than 1 gigabyte.")
        if self.item_size_max > self.memory_limit // 2:
            raise ConfigError("Cannot set item size limit higher than 1/2 of memory max.")
        if self.memory_limit < MIB:
            raise ConfigError("memory limit must be at least 1 megabyte")
        if self.idle_timeout < 0:
            raise ConfigError("idle_timeout must be 0 or more seconds")
        if self.cluster_admin_token_file and not self.cluster_config:
            raise ConfigError("--cluster-admin-token-file needs --cluster-config")


_SIZE = re.compile(r"^([0-9]+)([kKmMgG]?)$")


def parse_size(text: str) -> int:
    """A byte count with memcached's optional k/m/g suffix (``-I 1m``)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ConfigError(f"invalid size: {text!r}")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit]
