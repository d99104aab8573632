"""The run's configuration: small frozen value objects, validated once, passed down unchanged."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from exporter.canvas.refs import Ref

DEFAULT_SECTION_INCLUDES = ("total_students",)
DEFAULT_USER_INCLUDES = ("avatar_url",)
SNAPSHOT_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class ConfigError(ValueError):
    """The user asked for something that cannot run; the message says what and where."""


class Secret:
    """A value that must never be printed. `str()` and `repr()` show a placeholder."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> object:  # never pickled into a file by accident
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0  # longest silence while reading one response
    total: float = 120.0  # one attempt, start to end


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6  # for transient faults: 5xx, resets, timeouts, cut bodies
    throttled_attempts: int = 30  # throttling is not failure; wait longer before giving up
    base_delay: float = 0.25
    throttle_delay: float = 1.0
    max_delay: float = 30.0


@dataclass(frozen=True, slots=True)
class ClientConfig:
    base_url: str
    token: Secret
    concurrency: int = 32
    max_rps: float | None = None
    per_page: int = 100
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_body_bytes: int = 64 * 1024 * 1024
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        check_base_url(self.base_url, self.allow_insecure_http)
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_rps is not None and self.max_rps <= 0:
            raise ConfigError(f"--max-rps must be positive, got {self.max_rps}")
        if not 1 <= self.per_page <= 100:
            raise ConfigError(f"--per-page must be between 1 and 100 (Canvas's maximum), got {self.per_page}")
        if not self.token.reveal().strip():
            raise ConfigError("the API token is empty")


@dataclass(frozen=True, slots=True)
class Scope:
    """What to export: a list of courses, or every course an account lists."""

    courses: tuple[Ref, ...] = ()
    account: Ref | None = None

    def __post_init__(self) -> None:
        if bool(self.courses) == (self.account is not None):
            raise ConfigError("give exactly one of --course/--courses-file or --account")

    def describe(self) -> dict[str, object]:
        if self.account is not None:
            return {"account": self.account.text}
        return {"courses": [c.text for c in self.courses]}


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    client: ClientConfig
    scope: Scope
    out: str = "canvas-export"
    snapshot_id: str | None = None
    resume: bool = False
    section_includes: tuple[str, ...] = DEFAULT_SECTION_INCLUDES
    user_includes: tuple[str, ...] = DEFAULT_USER_INCLUDES
    checkpoint_seconds: float = 30.0  # how much work an interrupted run may have to fetch again
    recheck: bool = True  # list every course's sections a second time, for sections moved mid-crawl

    def __post_init__(self) -> None:
        if self.checkpoint_seconds < 0:
            raise ConfigError(f"--checkpoint-seconds must not be negative, got {self.checkpoint_seconds}")
        if self.snapshot_id is not None and not SNAPSHOT_ID.match(self.snapshot_id):
            raise ConfigError(
                f"--snapshot-id {self.snapshot_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOST_NAME = re.compile(r"\A[\w.-]+\Z")  # letters (IDN too), digits, '-', '.', '_': nothing a URL treats specially
_BRACKETED_HOST = re.compile(r"\A\[[^\[\]]+\](?::\d*)?\Z")  # an IPv6 literal, then at most a port
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")


def _shown_url(url: str) -> str:
    """The URL for a message, without any user:password@ it carries."""
    return repr(_USERINFO.sub("", url))


def check_base_url(url: str, allow_insecure_http: bool) -> None:
    shown = _shown_url(url)
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(f"--base-url {shown} contains spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed '[' of an IPv6 address
        raise ConfigError(f"--base-url {shown} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url {shown} must be an http(s) URL such as https://canvas.example.edu")
    host_port = parts.netloc.rpartition("@")[2]
    if host_port.startswith("["):
        valid_host = bool(_BRACKETED_HOST.match(host_port)) and _is_ipv6(parts.hostname)
    else:
        valid_host = bool(_HOST_NAME.match(parts.hostname))
    if not valid_host:
        raise ConfigError(f"--base-url {shown} is not a valid URL: {parts.hostname!r} is not a host name or address")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        port_text = host_port.rpartition(":")[2]
        raise ConfigError(f"--base-url {shown} has port {port_text!r}: a port is a number from 1 to 65535")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("--base-url must not carry credentials, a query or a fragment")
    if parts.path.rstrip("/").endswith("/api/v1"):  # the exporter adds /api/v1/... itself
        raise ConfigError(f"--base-url {shown} ends with /api/v1: give Canvas's address without it, "
                          f"e.g. {parts.scheme}://{parts.netloc.rpartition('@')[2]}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise ConfigError(
            f"--base-url {shown} is plain http: the token would cross the network unencrypted. "
            "Use https, or pass --allow-insecure-http if you really mean it"
        )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).version == 6
    except ValueError:
        return False
