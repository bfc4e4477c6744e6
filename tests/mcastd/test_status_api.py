"""The status page's routes without a network: the page, /api/session, /metrics (parsed with
prometheus_client), the token and Host rules, and bad requests answered with one sentence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driver.report import ReceiverRow, SenderSnapshot
from mcastd.status_api import ControlError, StatusApi, session_json
from mcastd.status_http import Request, Response
from mcastd.status_metrics import label_value, render_metrics
from mcastd.status_page import PAGE

TOKEN = "s3cret-token"


def snapshot() -> SenderSnapshot:
    rows = [
        ReceiverRow("10.77.0.2:41234", "receiving", 42.5, 80e6, 0.01,
                    host={"mac": "02:00:00:00:00:02"}),
        ReceiverRow("10.77.0.3:41235", "dropped", 10.0, 0.0, 0.2, reason="dropped by the admin"),
        ReceiverRow('10.77.0.4:1"\\', "receiving", 50.0, 1e6, 0.0),  # a hostile-looking label
    ]
    return SenderSnapshot(name="win11", image_size=1 << 30, elapsed=12.5, state="sending",
                          percent=42.5, rate_bps=850e6, eta=17.0, sent_bytes=500_000_000,
                          repair_bytes=1_000_000, receivers=rows)


class FakeControls:
    def __init__(self, snap: SenderSnapshot | None = None) -> None:
        self.snap = snap
        self.count = 3
        self.calls: list[tuple[str, Any]] = []
        self.refuse: str | None = None

    def snapshot(self) -> SenderSnapshot | None:
        return self.snap

    def expected(self) -> int:
        return self.count

    def _act(self, name: str, arg: Any = None) -> str:
        if self.refuse is not None:
            raise ControlError(self.refuse)
        self.calls.append((name, arg))
        return f"{name} done."

    def start_now(self) -> str:
        return self._act("start")

    def set_expected(self, count: int) -> str:
        self.count = count
        return self._act("expected", count)

    def drop(self, receiver: str) -> str:
        return self._act("drop", receiver)

    def stop(self) -> str:
        return self._act("stop")


def request(method: str, path: str, body: Any = None, *, token: str | None = None,
            host: str = "127.0.0.1:9780", content_type: str = "application/json",
            query: dict[str, str] | None = None) -> Request:
    headers = {"host": host, "content-type": content_type}
    if token is not None:
        headers["x-mcastd-token"] = token
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None \
        else b""
    return Request(method, path, query or {}, headers, raw)


def loopback_api(controls: FakeControls) -> StatusApi:
    return StatusApi(controls, token=None,
                     allowed_hosts=frozenset({"127.0.0.1:9780", "localhost:9780"}))


def body_of(response: Response) -> Any:
    return json.loads(response.body)


def test_the_page_is_self_contained_html() -> None:
    response = loopback_api(FakeControls()).route(request("GET", "/"))
    assert response.status == 200 and response.content_type.startswith("text/html")
    assert response.body == PAGE.encode()
    assert "Content-Security-Policy" in response.headers
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in PAGE  # the admin's machine may have no internet
    assert "innerHTML" not in PAGE  # what laptops report goes in as text


def test_the_session_as_json_has_the_totals_and_one_row_per_laptop() -> None:
    data = body_of(loopback_api(FakeControls(snapshot())).route(request("GET", "/api/session")))
    assert (data["name"], data["state"], data["percent"], data["eta"]) == (
        "win11", "sending", 42.5, 17.0)
    assert (data["joined"], data["expected"]) == (3, 3)
    assert data["rate_bps"] == 850e6
    first = data["receivers"][0]
    assert first["addr"] == "10.77.0.2:41234" and first["host"]["mac"] == "02:00:00:00:00:02"
    assert data["receivers"][1]["reason"] == "dropped by the admin"


def test_before_the_first_snapshot_the_session_is_starting() -> None:
    data = session_json(None, 2)
    assert (data["state"], data["joined"], data["expected"], data["receivers"]) == (
        "starting", 0, 2, [])
    text = render_metrics(None, 2)
    assert 'mcastd_session_state{state="starting"} 1' in text


def test_metrics_parse_as_prometheus_text_and_match_the_snapshot() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = loopback_api(FakeControls(snapshot())).route(request("GET", "/metrics"))
    assert response.content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("mcastd_receivers", (("state", "receiving"),))] == 2
    assert samples[("mcastd_receivers", (("state", "dropped"),))] == 1
    assert samples[("mcastd_receivers", (("state", "done"),))] == 0
    assert samples[("mcastd_sent_bytes_total", ())] == 500_000_000
    assert samples[("mcastd_repair_bytes_total", ())] == 1_000_000
    assert samples[("mcastd_send_rate_bits", ())] == 850e6
    assert samples[("mcastd_eta_seconds", ())] == 17.0
    assert samples[("mcastd_expected_receivers", ())] == 3
    assert samples[("mcastd_joined_receivers", ())] == 3
    assert samples[("mcastd_receiver_percent", (("receiver", "10.77.0.2:41234"),))] == 42.5
    assert samples[("mcastd_receiver_loss_ratio", (("receiver", "10.77.0.3:41235"),))] == 0.2
    assert samples[("mcastd_receiver_percent", (("receiver", '10.77.0.4:1"\\'),))] == 50.0
    assert families["mcastd_sent_bytes"].type == "counter"  # (the parser drops _total)
    assert families["mcastd_receiver_percent"].type == "gauge"
    assert all(f.documentation for f in families.values())


def test_label_values_are_escaped() -> None:
    assert label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


@pytest.mark.parametrize(("path", "body", "call"), [
    ("/api/start", {}, ("start", None)),
    ("/api/expected", {"expected": 5}, ("expected", 5)),
    ("/api/drop", {"receiver": "10.77.0.2:41234"}, ("drop", "10.77.0.2:41234")),
    ("/api/stop", None, ("stop", None)),
])
def test_on_loopback_control_actions_need_no_token(path: str, body: Any,
                                                    call: tuple[str, Any]) -> None:
    controls = FakeControls(snapshot())
    response = loopback_api(controls).route(request("POST", path, body))
    assert response.status == 200, response.body
    assert body_of(response) == {"ok": True, "message": f"{call[0]} done."}
    assert controls.calls == [call]


def test_beyond_loopback_control_actions_need_the_token() -> None:
    controls = FakeControls(snapshot())
    api = StatusApi(controls, token=TOKEN)
    for given in (None, "", "wrong", TOKEN + "x"):
        response = api.route(request("POST", "/api/stop", {}, token=given, host="10.0.0.1"))
        assert response.status == 403
        assert "token" in body_of(response)["error"]
    assert controls.calls == []
    assert api.route(request("POST", "/api/stop", {}, token=TOKEN)).status == 200
    # The page passes it on from its own ?token= as a header; a query works too.
    assert api.route(request("POST", "/api/start", {}, query={"token": TOKEN})).status == 200
    assert [c[0] for c in controls.calls] == ["stop", "start"]
    # Reads never need it.
    for path in ("/", "/api/session", "/metrics"):
        assert api.route(request("GET", path)).status == 200


def test_loopback_refuses_a_foreign_host_header() -> None:
    controls = FakeControls()
    response = loopback_api(controls).route(request("POST", "/api/stop", {},
                                                    host="evil.example:9780"))
    assert response.status == 403 and controls.calls == []


def test_a_form_post_from_another_page_is_refused() -> None:
    controls = FakeControls()
    response = loopback_api(controls).route(request("POST", "/api/stop", b"x=1",
                                                    content_type="text/plain"))
    assert response.status == 415 and controls.calls == []


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/nothing", None, 404),
    ("POST", "/api/session", {}, 405),
    ("GET", "/api/stop", None, 405),
    ("POST", "/api/expected", {"expected": 0}, 400),
    ("POST", "/api/expected", {"expected": "3"}, 400),
    ("POST", "/api/expected", {"expected": True}, 400),
    ("POST", "/api/expected", {"expected": 10**9}, 400),
    ("POST", "/api/expected", [1], 400),
    ("POST", "/api/expected", b"{not json", 400),
    ("POST", "/api/drop", {}, 400),
    ("POST", "/api/drop", {"receiver": "x" * 65}, 400),
])
def test_bad_requests_get_a_4xx_and_one_sentence(method: str, path: str, body: Any,
                                                 status: int) -> None:
    controls = FakeControls()
    response = loopback_api(controls).route(request(method, path, body))
    assert response.status == status
    error = body_of(response)["error"]
    assert error.endswith(".") and error.count(". ") == 0, error
    assert controls.calls == []


def test_an_action_the_session_cannot_take_is_a_conflict() -> None:
    controls = FakeControls()
    controls.refuse = "The session is over already."
    response = loopback_api(controls).route(request("POST", "/api/start", {}))
    assert response.status == 409
    assert body_of(response) == {"error": "The session is over already."}
