"""The status page's HTTP plumbing on real loopback sockets: limits on size, time and
connections, malformed requests answered with one sentence, and a failing handler that
costs one answer, never the server. Also --status parsing and the token rule."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

import pytest
import trio

from mcastd.status import DEFAULT_ADDRESS, StatusServer, status_address
from mcastd.status_http import MAX_BODY, MAX_HEAD, HttpServer, Request, Response


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("a bug")
    return Response(200, json.dumps({"method": request.method, "path": request.path,
                                     "query": request.query, "body": request.body.decode()
                                     }).encode())


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[int]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    http = HttpServer(echo, max_connections=2, timeout=0.5)
    nursery.start_soon(http.serve, listeners)
    yield listeners[0].socket.getsockname()[1]


async def exchange(port: int, raw: bytes) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def error_of(body: bytes) -> str:
    sentence = json.loads(body)["error"]
    assert isinstance(sentence, str) and sentence.endswith(".")
    return sentence


async def test_a_get_and_a_post_with_its_body(server: int) -> None:
    status, body = await exchange(server, b"GET /api/session?a=1&a=2 HTTP/1.1\r\n"
                                          b"Host: x\r\n\r\n")
    assert status == 200
    assert json.loads(body) == {"method": "GET", "path": "/api/session", "query": {"a": "1"},
                                "body": ""}
    status, body = await exchange(server, b"POST /api/stop HTTP/1.1\r\nContent-Length: 2\r\n"
                                          b"\r\n{}")
    assert status == 200 and json.loads(body)["body"] == "{}"


async def test_head_gets_the_headers_only(server: int) -> None:
    status, body = await exchange(server, b"HEAD / HTTP/1.1\r\n\r\n")
    assert status == 200 and body == b""


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/2\r\n\r\n", 505),
    (b"DELETE / HTTP/1.1\r\n\r\n", 405),
    (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10), 431),  # and no end in sight
    (b"GET / HTTP/1.1\r\n", 400),  # the client closes early (half-close below)
])
async def test_bad_requests_get_a_4xx_with_one_sentence(server: int, raw: bytes,
                                                        status: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    async with stream:
        await stream.send_all(raw)
        if raw.endswith(b"HTTP/1.1\r\n"):
            await stream.send_eof()
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert int(head.split(b" ")[1]) == status, data
    error_of(body)


async def test_a_failing_handler_costs_one_answer(server: int) -> None:
    status, body = await exchange(server, b"GET /boom HTTP/1.1\r\n\r\n")
    assert status == 500 and "log" in error_of(body)
    status, _ = await exchange(server, b"GET / HTTP/1.1\r\n\r\n")
    assert status == 200


async def test_a_slow_client_is_cut_off(server: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\n")  # and never the rest
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")


async def test_connections_beyond_the_limit_are_answered_503(server: int) -> None:
    idle = [await trio.open_tcp_stream("127.0.0.1", server) for _ in range(2)]
    await trio.sleep(0.05)
    try:
        status, body = await exchange(server, b"GET / HTTP/1.1\r\n\r\n")
        assert status == 503 and "Too many" in error_of(body)
    finally:
        for stream in idle:
            await stream.aclose()
    await trio.sleep(0.1)
    status, _ = await exchange(server, b"GET / HTTP/1.1\r\n\r\n")
    assert status == 200


@pytest.mark.parametrize(("text", "address"), [
    ("9000", ("127.0.0.1", 9000)),
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("localhost:8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:9780", ("0.0.0.0", 9780)),
    ("[::1]:9780", ("::1", 9780)),
    (DEFAULT_ADDRESS, ("127.0.0.1", 9780)),
])
def test_status_addresses(text: str, address: tuple[str, int]) -> None:
    assert status_address(text) == address


@pytest.mark.parametrize("text", ["", "host.example:80", "1.2.3.4:", "1.2.3.4:99999", "x"])
def test_bad_status_addresses_are_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        status_address(text)


async def test_loopback_has_no_token_and_anything_else_has_one() -> None:
    local = await StatusServer.open("127.0.0.1", 0)
    wide = await StatusServer.open("0.0.0.0", 0)
    try:
        assert local.token is None
        assert local.url("10.0.0.1") == f"http://127.0.0.1:{local.port}/"
        assert local.allowed_hosts() is not None
        assert f"localhost:{local.port}" in (local.allowed_hosts() or ())
        assert wide.token is not None and len(wide.token) >= 20
        assert wide.url("10.0.0.1") == f"http://10.0.0.1:{wide.port}/?token={wide.token}"
        assert wide.allowed_hosts() is None
        assert wide.url("fe80::1%lab0") == (f"http://[fe80::1%25lab0]:{wide.port}/"
                                            f"?token={wide.token}")
    finally:
        await local.aclose()
        await wide.aclose()


async def test_a_port_in_use_fails_with_a_sentence() -> None:
    from driver.udp import NetworkError

    taken = await StatusServer.open("127.0.0.1", 0)
    try:
        with pytest.raises(NetworkError, match="cannot listen on 127.0.0.1"):
            await StatusServer.open("127.0.0.1", taken.port)
    finally:
        await taken.aclose()


def test_serve_takes_status_alone_with_a_port_or_with_an_address() -> None:
    from mcastd.cli import build_parser

    def parsed(*extra: str) -> object:
        return build_parser().parse_args(["serve", "disk.img", *extra]).status

    assert parsed() is None
    assert parsed("--status") == ("127.0.0.1", 9780)
    assert parsed("--status", "8080") == ("127.0.0.1", 8080)
    assert parsed("--status", "10.0.0.1:80") == ("10.0.0.1", 80)
