"""What reaches the server but not the application cleanly: malformed chunked bodies,
bodies cut short, bodies of other media types. Each gets a JSON 4xx, never a 500 or
silence, and buyers on other connections do not notice. Raw sockets, because HTTP
clients will not send such requests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.conftest import Platform, Process, auth, start_api, token


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


async def exchange(base: str, head: bytes, body: bytes, wait: float = 10.0) -> Answer:
    """Send `head` (request line and headers, without the blank line) and `body` as they
    are on a fresh connection, and read one answer; the connection is left open until
    then, as a slow or broken client would leave it."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        content = await asyncio.wait_for(reader.readexactly(length), wait)
        return Answer(int(status_line.split()[1]), headers, content)
    finally:
        writer.close()


def request_head(method: str, path: str, user: str, *extra: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: flashsale",
        f"Authorization: Bearer {token(user)}",
        "Content-Type: application/json",
        *extra,
    ]
    return "\r\n".join(lines).encode()


MALFORMED_CHUNKED = {
    "bad_chunk_size": b"zz\r\nabc\r\n0\r\n\r\n",
    "overflowing_chunk_size": b"ffffffffffffffffffff\r\n" + b"a" * 32 + b"\r\n0\r\n\r\n",
}


def routes(sale: str) -> list[tuple[str, str]]:
    unknown_order = str(uuid.uuid4())
    return [
        ("POST", f"/v1/sales/{sale}/reservations"),
        ("POST", f"/v1/orders/{unknown_order}/payment"),
        ("GET", f"/v1/orders/{unknown_order}"),
        ("GET", "/v1/sales/no-such-sale"),
    ]


def assert_json_4xx(answer: Answer) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.json()["error"], answer.body


async def assert_buyer_unaffected(base: str, sale: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        user = f"bystander-{uuid.uuid4().hex[:8]}"
        r = await client.post(f"/v1/sales/{sale}/reservations", headers=auth(user))
        assert r.status_code == 202, r.text


@pytest.mark.parametrize("case", sorted(MALFORMED_CHUNKED))
async def test_malformed_chunked_bodies_are_json_4xx_on_every_route(
    platform: Platform, api: str, case: str
) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    for method, path in routes(sale):
        head = request_head(method, path, "chunky", "Transfer-Encoding: chunked")
        answer = await exchange(api, head, MALFORMED_CHUNKED[case])
        assert_json_4xx(answer)
        if method == "POST":  # the routes that read a body
            assert answer.status == 400 and answer.json()["error"] == "bad_request"
            assert answer.headers["connection"] == "close"
    assert platform.remaining(sale) == 5
    await assert_buyer_unaffected(api, sale)
    assert platform.remaining(sale) == 4


async def test_a_well_formed_chunked_body_still_buys(platform: Platform, api: str) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    head = request_head(
        "POST", f"/v1/sales/{sale}/reservations", "chunky", "Transfer-Encoding: chunked"
    )
    body = b'{"quantity": 2}'
    answer = await exchange(api, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert answer.status == 202, answer.body
    assert answer.json()["quantity"] == 2 and platform.remaining(sale) == 3


@pytest.fixture(scope="module")
def impatient_api(platform: Platform, workdir: Path) -> Iterator[tuple[Process, str]]:
    proc, base = start_api(
        platform, workdir, "api-body-timeout", FLASHSALE_BODY_TIMEOUT_SECONDS="1"
    )
    yield proc, base
    proc.stop()


async def test_a_body_cut_short_is_408_within_the_timeout(
    platform: Platform, impatient_api: tuple[Process, str]
) -> None:
    proc, base = impatient_api
    sale = platform.sale(stock=5, perUserLimit=5)
    path = f"/v1/sales/{sale}/reservations"
    head = request_head("POST", path, "slowpoke", "Content-Length: 14")
    started = time.monotonic()
    stuck = asyncio.ensure_future(exchange(base, head, b'{"qua'))
    await asyncio.sleep(0.3)
    await assert_buyer_unaffected(base, sale)  # while the other request hangs
    answer = await stuck
    elapsed = time.monotonic() - started
    assert answer.status == 408, answer.body
    assert answer.json()["error"] == "request_timeout"
    assert answer.headers["connection"] == "close"
    assert 0.9 <= elapsed < 3.0, elapsed
    assert platform.remaining(sale) == 4
    log = proc.output()
    assert f"408 for POST '{path}'" in log and "body timeout" in log
    assert '{"qua' not in log  # the body is never logged


async def test_cut_short_on_routes_that_never_read_a_body(
    platform: Platform, impatient_api: tuple[Process, str]
) -> None:
    _, base = impatient_api
    sale = platform.sale()
    for method, path in routes(sale)[1:]:
        head = request_head(method, path, "slowpoke", "Content-Length: 14")
        assert_json_4xx(await exchange(base, head, b'{"qua', wait=3.0))


async def test_a_slow_body_within_the_timeout_is_served(
    platform: Platform, impatient_api: tuple[Process, str]
) -> None:
    _, base = impatient_api
    sale = platform.sale(stock=5, perUserLimit=5)
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = request_head("POST", f"/v1/sales/{sale}/reservations", "patient", "Content-Length: 15")
    writer.write(head + b"\r\n\r\n" + b'{"quan')
    await writer.drain()
    await asyncio.sleep(0.6)
    writer.write(b'tity": 3}')
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 202"), raw
    assert platform.remaining(sale) == 2


# Media types FastAPI reads as JSON, and some it does not; the fast path must agree.
CONTENT_TYPES = {
    "application/json": 202,
    "Application/JSON; charset=utf-8": 202,
    "application/json ; foo=bar": 202,
    "application/merge-patch+json": 202,
    "application/jsonfoo": 422,
    "application/json-seq": 422,
    "application/json+zip": 422,
    "text/json": 422,
    "text/plain": 422,
}


@pytest.mark.parametrize("content_type", sorted(CONTENT_TYPES))
async def test_fast_path_and_route_agree_on_media_types(
    platform: Platform, client: httpx.AsyncClient, content_type: str
) -> None:
    sale = platform.sale(stock=10, perUserLimit=10)
    headers = {**auth("media"), "Content-Type": content_type}
    path = f"/v1/sales/{sale}/reservations"
    simple = await client.post(path, content=b'{"quantity": 1}', headers=headers)  # fast path
    routed = await client.post(path, content=b'{"quantity": 1.0}', headers=headers)  # the route
    assert simple.status_code == routed.status_code == CONTENT_TYPES[content_type], (
        simple.text,
        routed.text,
    )
    assert "error" in simple.json() if simple.status_code == 422 else simple.json()["quantity"] == 1
    taken = 2 if CONTENT_TYPES[content_type] == 202 else 0
    assert platform.remaining(sale) == 10 - taken
