"""The client's real address and scheme behind trusted reverse proxies (KB_TRUSTED_PROXIES).

werkzeug's ProxyFix trusts a fixed number of hops from whoever connects; this trusts the forwarded
headers only when the peer itself is a listed proxy, so a client reaching kb directly cannot claim
another address.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

Networks = Sequence[IPv4Network | IPv6Network]


def is_trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks: Networks) -> str:
    """Who sent a request that `peer` passed on with X-Forwarded-For `forwarded_for`: the rightmost
    address not in `networks`, read from the right past trusted proxies (every proxy appends
    whom it heard from; what lies left of an untrusted entry could be made up). The peer itself
    when it is not trusted; the last trusted hop when an entry is not an address."""
    if not is_trusted(peer, networks):
        return peer
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ip_address(entry)
        except ValueError:
            break
        client = entry
        if not is_trusted(entry, networks):
            break
    return client


class TrustedProxies:
    """WSGI middleware: from a trusted peer, REMOTE_ADDR becomes `client_address` and the URL scheme
    what its X-Forwarded-Proto says (the last value, set by the nearest proxy); the peer stays in
    `kb.proxy`."""

    def __init__(self, app, networks: Networks):
        self.app = app
        self.networks = tuple(networks)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        if self.networks and is_trusted(peer, self.networks):
            environ["kb.proxy"] = peer
            environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR", ""), self.networks)
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").rsplit(",", 1)[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.app(environ, start_response)
