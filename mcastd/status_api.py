"""The status page's routes: the page, the session as JSON, Prometheus metrics, and the
admin's control actions. Reads are free; a control action needs the token when the server
listens beyond loopback, and a JSON body (a page elsewhere cannot send one cross-origin
without a CORS preflight, which is never answered: no CSRF from another tab)."""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict
from typing import Any, Protocol

from driver.report import SenderSnapshot

from .status_http import HttpError, Request, Response, error_response, json_response
from .status_metrics import render_metrics
from .status_page import PAGE

TOKEN_HEADER = "x-mcastd-token"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_EXPECTED = 10_000


class ControlError(Exception):
    """A control action the session cannot take now (one sentence for the admin)."""


class Controls(Protocol):
    """What the status page reads and does; the daemon's side is status_control.py."""

    def snapshot(self) -> SenderSnapshot | None: ...  # the latest one the daemon built
    def expected(self) -> int: ...
    def start_now(self) -> str: ...  # each action returns what it did, one sentence
    def set_expected(self, count: int) -> str: ...
    def drop(self, receiver: str) -> str: ...
    def stop(self) -> str: ...


def session_json(snapshot: SenderSnapshot | None, expected: int) -> dict[str, Any]:
    """/api/session: the session and one row per laptop."""
    if snapshot is None:
        return {"name": "", "state": "starting", "percent": 0.0, "rate_bps": 0.0, "eta": None,
                "elapsed": 0.0, "image_size": 0, "sent_bytes": 0, "repair_bytes": 0,
                "joined": 0, "expected": expected, "receivers": []}
    data = asdict(snapshot)
    data["joined"] = len(snapshot.receivers)
    data["expected"] = expected
    return data


class StatusApi:
    def __init__(self, controls: Controls, *, token: str | None,
                 allowed_hosts: frozenset[str] | None = None) -> None:
        self.controls = controls
        self.token = token  # None: listening on loopback, no token needed
        # On loopback, the Host names a request may carry: a rebinding DNS name is refused.
        self.allowed_hosts = allowed_hosts

    async def handle(self, request: Request) -> Response:
        return self.route(request)

    def route(self, request: Request) -> Response:
        path, method = request.path, request.method
        reads = {"/": self._page, "/index.html": self._page, "/api/session": self._session,
                 "/metrics": self._metrics}
        actions = {"/api/start": self._start, "/api/expected": self._expected,
                   "/api/drop": self._drop, "/api/stop": self._stop}
        if path in reads:
            if method == "POST":
                return error_response(405, f"{path} is read with GET.")
            return reads[path]()
        if path in actions:
            if method != "POST":
                return error_response(405, f"{path} is a control action: POST it.")
            try:
                self._check_origin(request)
                self._check_token(request)
                return json_response(200, {"ok": True,
                                           "message": actions[path](json_body(request))})
            except HttpError as exc:
                return error_response(exc.status, exc.sentence)
            except ControlError as exc:
                return error_response(409, str(exc))
        return error_response(404, f"Nothing at {path[:64]}: try /, /api/session or /metrics.")

    # --- reads ----------------------------------------------------------------------------

    def _page(self) -> Response:
        return Response(200, PAGE.encode(), "text/html; charset=utf-8", {
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; img-src data:; "
                                       "connect-src 'self'; frame-ancestors 'none'"})

    def _session(self) -> Response:
        return json_response(200, session_json(self.controls.snapshot(),
                                               self.controls.expected()))

    def _metrics(self) -> Response:
        text = render_metrics(self.controls.snapshot(), self.controls.expected())
        return Response(200, text.encode(), METRICS_TYPE)

    # --- control actions --------------------------------------------------------------------

    def _check_origin(self, request: Request) -> None:
        if self.allowed_hosts is not None:
            host = request.headers.get("host", "")
            if host not in self.allowed_hosts:
                raise HttpError(403, "Control actions on localhost need a localhost Host header.")
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise HttpError(415, "Send a control action as application/json.")

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HttpError(403, "This control action needs the token `mcastd serve` printed "
                                 "at start (the status page's ?token=).")

    def _start(self, _body: dict[str, Any]) -> str:
        return self.controls.start_now()

    def _expected(self, body: dict[str, Any]) -> str:
        count = body.get("expected")
        if not isinstance(count, int) or isinstance(count, bool) or not (
                1 <= count <= MAX_EXPECTED):
            raise HttpError(400, f"Send {{\"expected\": N}} with N from 1 to {MAX_EXPECTED}.")
        return self.controls.set_expected(count)

    def _drop(self, body: dict[str, Any]) -> str:
        receiver = body.get("receiver")
        if not isinstance(receiver, str) or not receiver or len(receiver) > 64:
            raise HttpError(400, "Send {\"receiver\": \"ADDRESS:PORT\"} as the table shows it.")
        return self.controls.drop(receiver)

    def _stop(self, _body: dict[str, Any]) -> str:
        return self.controls.stop()


def json_body(request: Request) -> dict[str, Any]:
    """The JSON object a control action carries (an empty body is an empty object)."""
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise HttpError(400, "The request body must be a JSON object.")
    return data
