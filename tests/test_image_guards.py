"""Hostile image sources: non-regular files, huge files, NUL paths, embedded-IPv4 URL hosts,
and seeded property-based fuzzing of Image.load (issue 9, items 4-5)."""

from __future__ import annotations

import base64
import http.server
import io
import ipaddress
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from vlgate.errors import ImageError
from vlgate.image import Image
from vlgate.image.fetch import embedded_ipv4, is_public


def png(w: int = 8, h: int = 6) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


# --- local files (item 4) ------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(ImageError, match=r"not a regular file.*FIFO"):
        Image.load(str(fifo))
    with pytest.raises(ImageError, match="not a regular file"):
        Image.load(fifo)  # PathLike too
    assert time.perf_counter() - started < 5


@pytest.mark.timeout(10)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(ImageError, match=r"not a regular file.*character device"):
        Image.load(device)


@pytest.mark.timeout(10)
def test_huge_sparse_file_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "huge.png"
    with open(big, "wb") as fh:
        fh.write(png())
        fh.truncate(1 << 30)  # 1 GiB, sparse: costs no disk, would cost 1 GiB of memory to read
    started = time.perf_counter()
    with pytest.raises(ImageError, match=r"1073741824 bytes, more than max_file_bytes=268435456"):
        Image.load(big)
    assert time.perf_counter() - started < 2  # refused on stat, not after reading 1 GiB


def test_file_size_cap_is_a_parameter(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(png())
    assert Image.load(path, max_file_bytes=len(png())).size == (8, 6)
    with pytest.raises(ImageError, match="more than max_file_bytes=10"):
        Image.load(path, max_file_bytes=10)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ImageError, match="max_file_bytes must be a positive int"):
            Image.load(path, max_file_bytes=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["photo\x00.jpg", "\x00", Path("x\x00y")])
def test_nul_in_path_is_an_image_error(path: Any) -> None:
    with pytest.raises(ImageError, match="NUL"):
        Image.load(path)


async def test_aload_applies_the_same_file_guards(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="NUL"):
        await Image.aload("a\x00b")
    if Path("/dev/zero").exists():  # noqa: ASYNC240 - a stat, not I/O worth a thread
        with pytest.raises(ImageError, match="not a regular file"):
            await Image.aload("/dev/zero")


def test_regular_files_and_symlinks_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    path.write_bytes(png(5, 4))
    link = tmp_path / "link.png"
    link.symlink_to(path)
    assert Image.load(path).size == Image.load(str(link)).size == (5, 4)
    with pytest.raises(ImageError, match="directory"):
        Image.load(tmp_path)


# --- the URL address guard (item 5) --------------------------------------------------------------

REFUSED = [
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254 (cloud metadata)
    "2002:0a00:0001::",  # 6to4 around 10.0.0.1
    "fec0::1",  # site-local
    "feff::1",  # site-local, top of fec0::/10
    "64:ff9b::7f00:1",  # NAT64 well-known prefix around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64: local networks only
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (documentation client 192.0.2.45)
    "2001:0:808:808:0:0:80f7:f7f7",  # Teredo whose obfuscated client is 127.8.8.8
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT)
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible, deprecated even when public
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "100::1",
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
]
ALLOWED = [
    "8.8.8.8",
    "2606:4700::1111",
    "2002:0808:0808::",  # 6to4 around a public address
    "64:ff9b::808:808",  # NAT64 (DNS64 networks) around a public address
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("address", REFUSED)
def test_guard_refuses_non_public_and_embedded_forms(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_guard_allows_public_including_embedded_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_embedded_ipv4_decodes_every_form() -> None:
    def e(text: str) -> list[str] | None:
        got = embedded_ipv4(ipaddress.IPv6Address(text))
        return None if got is None else [str(a) for a in got]

    assert e("2002:7f00:1::") == ["127.0.0.1"]
    assert e("64:ff9b::a9fe:a9fe") == ["169.254.169.254"]
    assert e("::ffff:10.0.0.1") == ["10.0.0.1"]
    assert e("2001:0:808:808:0:0:80f7:f7f7") == ["8.8.8.8", "127.8.8.8"]
    assert e("2606:4700::1111") is None


class _Redirector(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str] = []  # noqa: RUF012 - shared log, test-only

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Redirector.hits.append(self.path)
        port = self.server.server_address[1]
        target = self.path.partition("?to=")[2]
        self.send_response(302)
        self.send_header("Location", f"http://[{target}]:{port}/img.png")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def redirector() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("target", ["2002:7f00:1::", "fec0::1", "64:ff9b::7f00:1"])
def test_redirect_to_embedded_loopback_refused_before_connecting(
    redirector: str, target: str
) -> None:
    # The loopback server is allowed by the list; the redirect's IPv6 form of it is not.
    _Redirector.hits.clear()
    with pytest.raises(ImageError, match="non-public address"):
        Image.load(f"{redirector}/?to={target}", allow_private_urls=["127.0.0.1/32"])
    assert _Redirector.hits == [f"/?to={target}"]
    with pytest.raises(ImageError, match="non-public address"):
        Image.load(f"http://[{target}]/cat.png")


# --- property-based fuzzing of Image.load ---------------------------------------------------------

_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_PNG = png(4, 3)
_MAGICS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]


def _loads_or_image_error(source: Any) -> None:
    try:
        img = Image.load(source, max_pixels=4_000_000)
    except ImageError:
        return
    assert img.width >= 1 and img.height >= 1
    enc = img.encode()
    assert enc.size == img.size


@seed(9)
@_FUZZ
@given(
    prefix=st.sampled_from([b"", *_MAGICS]),
    body=st.binary(max_size=512),
)
def test_fuzz_load_bytes(prefix: bytes, body: bytes) -> None:
    _loads_or_image_error(prefix + body)


@seed(9)
@_FUZZ
@given(
    cut=st.integers(0, len(_PNG)),
    flips=st.lists(st.tuples(st.integers(0, len(_PNG) - 1), st.integers(1, 255)), max_size=4),
)
def test_fuzz_load_mutated_png(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_PNG)
    for at, xor in flips:
        data[at] ^= xor
    _loads_or_image_error(bytes(data[:cut]))
    _loads_or_image_error(f"data:image/png;base64,{base64.b64encode(bytes(data)).decode()}")


@seed(9)
@_FUZZ
@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=4),
    dtype=st.sampled_from(["uint8", "uint16", "int32", "float32", "float64", "bool", "complex64"]),
    fill=st.floats(allow_nan=True, allow_infinity=True, width=32),
)
def test_fuzz_load_arrays(shape: list[int], dtype: str, fill: float) -> None:
    try:
        with np.errstate(all="ignore"):
            arr = np.full(tuple(shape), fill).astype(dtype)
    except (ValueError, OverflowError, TypeError):
        return
    _loads_or_image_error(arr)


@seed(9)
@_FUZZ
@given(name=st.text(max_size=40))
def test_fuzz_load_paths(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    base = tmp_path_factory.getbasetemp()
    _loads_or_image_error(name)
    _loads_or_image_error(str(base / name))
