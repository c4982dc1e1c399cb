"""``redis+sentinel://h1:26379,h2:26379/master-name``: Redis behind Redis Sentinel.

Everything about the data is the standalone store's (one server holds every key, so the
record and its event are written by one script and ``WAIT`` runs on the same
connection); only where the primary is comes from the sentinels, asked again after
every connection failure, so revoker follows a failover without a restart.

URL grammar (credentials and TLS, as operators write them for other Redis clients)::

    redis+sentinel://[user:password@]h1:26379[,h2:26379...]/master-name[/db]
        [?ssl=true&ssl_ca_certs=PATH&ssl_certfile=PATH&ssl_keyfile=PATH
          &ssl_cert_reqs=required|optional|none
          &sentinel_username=U&sentinel_password=P]

``user:password`` authenticate to the primary and replicas (ACL user or ``requirepass``);
sentinels get their own credentials from ``sentinel_username`` / ``sentinel_password``
because they are usually configured separately. ``rediss+sentinel://`` implies
``ssl=true``; TLS applies to the sentinels and the data nodes alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio.sentinel import Sentinel

from revoker.errors import ConfigError
from revoker.store.base import StoreHealth
from revoker.store.redis import RedisStore, connection_options

VARIABLE = "REVOKER_STORE_URL"
SSL_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
KNOWN_QUERY = frozenset({"ssl", *SSL_OPTIONS, "sentinel_username", "sentinel_password"})


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    """A Redis URL with several ``host:port`` pairs, as Sentinel and Cluster URLs have."""

    hosts: tuple[tuple[str, int], ...]
    path: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: dict[str, str] = field(default_factory=dict)
    tls: bool = False

    def auth(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        return out

    def ssl(self) -> dict[str, Any]:
        """redis-py TLS options from the query string; empty when TLS is off."""
        if not self.tls:
            return {}
        out: dict[str, Any] = {"ssl": True}
        for name in SSL_OPTIONS:
            if name in self.query:
                out[name] = self.query[name]
        return out


def parse_multi_host(url: str, *, default_port: int,
                     known_query: frozenset[str] = KNOWN_QUERY) -> MultiHostUrl:
    """Parse by hand: ``urllib`` cannot read a netloc holding several hosts."""
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts = tuple(_host_port(item, default_port) for item in hostlist.split(",") if item)
    if not hosts:
        raise ConfigError(VARIABLE, "at least one host:port is required")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - known_query)
    if unknown:
        raise ConfigError(VARIABLE, f"unknown URL option(s): {', '.join(unknown)}")
    tls = parts.scheme.startswith("rediss") or query.get("ssl", "").lower() in ("1", "true",
                                                                                  "yes")
    return MultiHostUrl(hosts=hosts, path=tuple(p for p in parts.path.split("/") if p),
                        username=unquote(username) or None, password=unquote(password) or None,
                        query=query, tls=tls)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    if not sep:
        host, port = item.strip(), str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(VARIABLE, f"bad host:port {item!r}")
    return host, int(port)


class SentinelStore(RedisStore):
    """The primary named by the sentinels; the rest is :class:`RedisStore`."""

    #: One set of sentinel connections, shared by every pool of this store.
    sentinel: Sentinel | None = None

    def _connect(self, *, max_connections: int) -> Any:
        """A client of the current primary with a pool of its own (one per lane, and one
        for the event tail), all found through the same sentinels."""
        if self.sentinel is None:
            self._parsed = self._sentinels()
        parsed, db = self._parsed
        assert self.sentinel is not None
        return self.sentinel.master_for(self.master_name, db=db,
                                        max_connections=max_connections,
                                        **connection_options(self.timeout_s),
                                        **parsed.auth(), **parsed.ssl())

    def _sentinels(self) -> tuple[MultiHostUrl, int]:
        parsed = parse_multi_host(self.url, default_port=26379)
        if not parsed.path:
            raise ConfigError(VARIABLE, "redis+sentinel:// needs the master name as its path")
        self.master_name = parsed.path[0]
        db = parsed.path[1] if len(parsed.path) > 1 else "0"
        if not db.isdigit():
            raise ConfigError(VARIABLE, f"database must be a number, got {db!r}")
        options = connection_options(self.timeout_s)
        sentinel_auth = {k.removeprefix("sentinel_"): v for k, v in parsed.query.items()
                         if k in ("sentinel_username", "sentinel_password")}
        sentinel_kwargs = {"socket_connect_timeout": options["socket_connect_timeout"],
                           "socket_timeout": max(self.timeout_s * 4, 1.0),
                           **sentinel_auth, **parsed.ssl()}
        self.sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts), sentinel_kwargs=sentinel_kwargs)
        return parsed, int(db)

    async def close(self) -> None:
        await super().close()
        if self.sentinel is not None:
            await self.sentinel.aclose()

    async def _health(self) -> StoreHealth:
        """The primary's own health, plus what the sentinels say about it."""
        health = await super()._health()
        health.detail["backend"] = "redis+sentinel"
        health.detail["sentinel"] = await self._sentinel_view()
        return health

    async def _sentinel_view(self) -> dict[str, Any]:
        assert self.sentinel is not None
        host, port = await self.sentinel.discover_master(self.master_name)
        replicas = await self.sentinel.discover_replicas(self.master_name)
        return {"master_name": self.master_name, "primary": f"{host}:{port}",
                "healthy_replicas": len(replicas), "sentinels": len(self.sentinel.sentinels)}
