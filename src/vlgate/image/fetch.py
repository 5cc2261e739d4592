"""Fetching image URLs: the address guard, DNS pinning, redirects, size caps and one deadline.

Every address a host resolves to is checked before connecting, and the connection goes to the
checked address (no second DNS answer). Redirects are re-checked hop by hop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ImageError

if TYPE_CHECKING:
    import httpx

_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to put in messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0][:200]


def _allowed_networks(
    allow: bool | Collection[str],
) -> bool | list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(allow, bool):
        return allow
    items = [allow] if isinstance(allow, str) else list(allow)
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ImageError(f"allow_private_urls: {exc}") from None


_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: IPv4 in the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local-use translators only
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated; holds :: and ::1 too


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo), else None.

    A connection to such an address reaches (or is routed by) the IPv4 host inside it, so the
    guard judges those hosts.

    Example:
        >>> embedded_ipv4(ipaddress.IPv6Address("2002:7f00:1::"))
        [IPv4Address('127.0.0.1')]
    """
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_TRANSLATED:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo  # the client address comes back de-obfuscated
        return [server, client]
    return None


def is_public(ip: _IP) -> bool:
    """Whether vlgate may fetch from ``ip`` without ``allow_private_urls``.

    Built on :mod:`ipaddress` properties: a public address is global and not private, loopback,
    link-local, site-local, multicast, reserved or unspecified. An IPv6 address carrying an
    IPv4 address (see :func:`embedded_ipv4`) is public only when every IPv4 inside is, and the
    local-use NAT64 prefix and IPv4-compatible addresses never are.

    Example:
        >>> is_public(ipaddress.ip_address("8.8.8.8")), is_public(ipaddress.ip_address("fec0::1"))
        (True, False)
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or ip in _IPV4_COMPATIBLE:
            return False
        carried = embedded_ipv4(ip)
        if carried is not None:
            return all(is_public(v4) for v4 in carried)
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass
class _Hop:
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]
    shown: str


def _parse_url(url: str | httpx.URL, shown: str) -> httpx.URL:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ImageError(f"invalid image URL: {shown}") from None
    if parsed.scheme not in ("http", "https"):
        raise ImageError(f"unsupported URL scheme {parsed.scheme!r} in {shown}: use http or https")
    if not parsed.host:
        raise ImageError(f"image URL has no host: {shown}")
    return parsed


def _plan_hops(
    url: httpx.URL,
    addresses: list[str],
    allow: bool | list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    shown: str,
) -> list[_Hop]:
    """Check every address ``url``'s host resolves to; one connection plan per address."""
    if allow is True:
        return [_Hop(url, {}, {}, shown)]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        permitted = is_public(ip) or (
            allow is not False and any(ip.version == n.version and ip in n for n in allow)
        )
        if not permitted:
            raise ImageError(
                f"refusing to fetch {shown}: host {url.host!r} resolves to non-public address "
                f"{ip} (pass allow_private_urls=True, or a list of allowed networks, to permit)"
            )
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise ImageError(f"cannot resolve host {url.host!r} of {shown}")
    # Connect to the addresses just checked, not to a second DNS answer (DNS rebinding).
    headers = {"Host": url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return [_Hop(url.copy_with(host=str(ip)), headers, extensions, shown) for ip in ips]


def _literal_ip(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


async def _resolve_async(url: httpx.URL, shown: str) -> list[str]:
    literal = _literal_ip(url.host)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(url.host, url.port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageError(f"cannot resolve host {url.host!r} of {shown}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def _client_kwargs(timeout: float, allow: object) -> dict[str, Any]:
    # With address checks on, an environment proxy would resolve the host itself and defeat them.
    return {
        "timeout": timeout,
        "follow_redirects": False,
        "trust_env": allow is True,
        "headers": {"User-Agent": "vlgate", "Accept": "image/*", "Accept-Encoding": "identity"},
    }


def _check_fetch_args(timeout: float, max_bytes: int) -> None:
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ImageError(f"url_timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ImageError(f"max_download_bytes must be a positive int, got {max_bytes!r}")


def _next_location(response: httpx.Response, url: httpx.URL, shown: str) -> httpx.URL | None:
    """The redirect target, ``None`` for a usable 2xx, or an error for anything else."""
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("location")
        if not location:
            raise ImageError(f"HTTP {status} redirect without Location fetching {shown}")
        return url.join(location)
    if status >= 400 or status < 200 or status >= 300:
        raise ImageError(f"HTTP {status} fetching {shown}")
    return None


def _check_length(response: httpx.Response, max_bytes: int, shown: str) -> None:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ImageError(
            f"{shown} is {int(declared)} bytes, more than max_download_bytes={max_bytes}"
        )


def _over_cap(shown: str, max_bytes: int) -> ImageError:
    return ImageError(f"download of {shown} exceeded max_download_bytes={max_bytes}; stopped")


def fetch_sync(
    source: str, *, allow_private: bool | Collection[str], timeout: float, max_bytes: int
) -> bytes:
    """The sync facade of :func:`_fetch_async`, run on vlgate's background loop."""
    from ..runtime.loop import run_sync

    return run_sync(
        fetch_async(source, allow_private=allow_private, timeout=timeout, max_bytes=max_bytes)
    )


async def fetch_async(
    source: str, *, allow_private: bool | Collection[str], timeout: float, max_bytes: int
) -> bytes:
    import httpx

    _check_fetch_args(timeout, max_bytes)
    allow = _allowed_networks(allow_private)
    shown = safe_url(source)
    url = _parse_url(source, shown)

    async def run() -> bytes:
        nonlocal url, shown
        async with httpx.AsyncClient(**_client_kwargs(timeout, allow)) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                addresses = [] if allow is True else await _resolve_async(url, shown)
                hops = _plan_hops(url, addresses, allow, shown)
                for i, hop in enumerate(hops):
                    request = client.build_request(
                        "GET", hop.url, headers=hop.headers, extensions=hop.extensions
                    )
                    try:
                        response = await client.send(request, stream=True)
                        break
                    except httpx.ConnectError:
                        if i == len(hops) - 1:
                            raise
                try:
                    nxt = _next_location(response, url, shown)
                    if nxt is None:
                        _check_length(response, max_bytes, shown)
                        chunks, total = [], 0
                        async for chunk in response.aiter_raw(_CHUNK):
                            total += len(chunk)
                            if total > max_bytes:
                                raise _over_cap(shown, max_bytes)
                            chunks.append(chunk)
                        return _decoded(response, b"".join(chunks), max_bytes, shown)
                finally:
                    await response.aclose()
                shown = safe_url(str(nxt))
                url = _parse_url(nxt, shown)
        raise ImageError(f"too many redirects (> {_MAX_REDIRECTS}) fetching {safe_url(source)}")

    try:
        # One deadline for the whole fetch: a server dripping bytes cannot stretch it.
        return await asyncio.wait_for(run(), timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException):
        raise _timed_out(timeout, shown) from None
    except httpx.HTTPError as exc:
        raise _fetch_failed(exc, shown) from None


def _timed_out(timeout: float, shown: str) -> ImageError:
    return ImageError(f"timed out after {timeout:g} s fetching {shown}")


def _fetch_failed(exc: Exception, shown: str) -> ImageError:
    detail = str(exc)
    # httpx messages rarely hold a URL, but one with a query string could carry a token.
    detail = "" if "://" in detail or not detail else f": {detail[:200]}"
    return ImageError(f"cannot fetch {shown}: {type(exc).__name__}{detail}")


def _decoded(response: httpx.Response, raw: bytes, max_bytes: int, shown: str) -> bytes:
    """Undo a Content-Encoding (gzip, ...) with the same size cap, so a zip bomb cannot pass."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        data = raw
    else:
        import zlib

        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise ImageError(f"unsupported Content-Encoding {encoding!r} from {shown}")
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            d = zlib.decompressobj(wbits)
            data = d.decompress(raw, max_bytes + 1)
        except zlib.error:
            raise ImageError(f"corrupt {encoding} body from {shown}") from None
        if len(data) > max_bytes:
            raise _over_cap(shown, max_bytes)
    if not data:
        raise ImageError(f"{shown} returned an empty body")
    return data
