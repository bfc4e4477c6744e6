"""Just enough HTTP/1.1 for the status page, on trio streams: one request per connection,
bounded in size, time and number of connections, so that no client (a stuck browser tab, a
port scanner) can hold the sender up. No web framework: the sender runs from a boot stick or a
bare admin machine, and three routes do not need one."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

logger = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024  # request line and headers
MAX_BODY = 4 * 1024  # a control action's JSON is a few dozen bytes
MAX_CONNECTIONS = 16  # at once; more are answered 503 and closed
REQUEST_TIMEOUT = 5.0  # seconds for a whole request and its answer
LINGER = 0.5  # seconds a closing connection may still take the client's leftovers
METHODS = {"GET", "HEAD", "POST"}

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable", 505: "HTTP Version Not Supported"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]  # the first value of each name
    headers: dict[str, str]  # names in lower case
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, head_only: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}",
                 f"Content-Type: {self.content_type}",
                 f"Content-Length: {len(self.body)}",
                 "Cache-Control: no-store",
                 "X-Content-Type-Options: nosniff",
                 "Connection: close"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def json_response(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode())


def error_response(status: int, sentence: str) -> Response:
    """A 4xx/5xx with its one plain sentence, as JSON: {"error": "..."}."""
    return json_response(status, {"error": sentence})


class HttpError(Exception):
    """A request we will not take: its status and the sentence the client gets."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


def parse_head(head: bytes) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """Method, path, query and headers of a request head (without its blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # (latin-1 decodes anything; kept for clarity)
        raise HttpError(400, "The request is not HTTP.") from exc
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HttpError(400, "The request line must be METHOD PATH HTTP/1.1.")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, "Only HTTP/1.0 and HTTP/1.1 are served.")
    if method not in METHODS:
        raise HttpError(405, f"Method {method[:16]!r} is not served: use GET or POST.")
    if not target.startswith("/"):
        raise HttpError(400, "The request path must start with '/'.")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "A request header is malformed.")
        headers[name.lower()] = value.strip()
    url = urlsplit(target)
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    return method, url.path, query, headers


async def read_request(stream: trio.abc.ReceiveStream) -> Request:
    """One request from ``stream``, refused (HttpError) past the size limits."""
    data = bytearray()
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > MAX_HEAD:
            raise HttpError(431, f"The request head is over {MAX_HEAD} bytes.")
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise HttpError(400, "The request ended before its headers did.")
        data += chunk
    if end > MAX_HEAD:
        raise HttpError(431, f"The request head is over {MAX_HEAD} bytes.")
    method, path, query, headers = parse_head(bytes(data[:end]))
    if "transfer-encoding" in headers:
        raise HttpError(411, "Send the body with a Content-Length, not chunked.")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or len(length_text) > 9:
        raise HttpError(400, "The Content-Length is not a number.")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpError(413, f"The request body is over {MAX_BODY} bytes.")
    body = bytearray(data[end + 4:])
    while len(body) < length:
        chunk = await stream.receive_some(length - len(body))
        if not chunk:
            raise HttpError(400, "The request ended before its body did.")
        body += chunk
    return Request(method, path, query, headers, bytes(body[:length]))


async def _linger(stream: trio.abc.Stream) -> None:
    """Close our side, then read (and drop) what the client still sends for a moment: a
    socket closed with unread data resets the connection, and the client would lose the
    answer it has not read yet (a 413, a 503)."""
    try:
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        drained = 0
        while drained < MAX_HEAD + MAX_BODY and (chunk := await stream.receive_some(4096)):
            drained += len(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` on listeners; bounded so it never competes with the data path."""

    def __init__(self, handler: Handler, *, max_connections: int = MAX_CONNECTIONS,
                 timeout: float = REQUEST_TIMEOUT) -> None:
        self.handler = handler
        self.timeout = timeout
        self._slots = trio.Semaphore(max_connections)

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        await trio.serve_listeners(self.serve_connection, listeners)

    async def serve_connection(self, stream: trio.abc.Stream) -> None:
        try:
            if self._slots.value == 0:
                with trio.move_on_after(self.timeout):
                    await stream.send_all(error_response(
                        503, "Too many connections at once: try again shortly.").encode())
                return
            async with self._slots:
                await self._answer(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away: nothing to tell it
        finally:
            with trio.CancelScope(deadline=trio.current_time() + LINGER, shield=True):
                await _linger(stream)
                await stream.aclose()

    async def _answer(self, stream: trio.abc.Stream) -> None:
        head_only = False
        with trio.move_on_after(self.timeout) as scope:
            try:
                request = await read_request(stream)
                head_only = request.method == "HEAD"
                response = await self.handler(request)
            except HttpError as exc:
                response = error_response(exc.status, exc.sentence)
            except Exception:  # a bug here must cost one answer, never the session
                logger.exception("the status page failed on a request")
                response = error_response(500, "The status page failed on this request: see "
                                               "the sender's log.")
            await stream.send_all(response.encode(head_only))
        if scope.cancelled_caught:
            with trio.move_on_after(0.5):
                await stream.send_all(error_response(
                    408, f"The request took over {self.timeout:g} s.").encode())
