"""The status page of a real `mcastd serve` in the kernel lab: headless Chromium renders the
live table mid-transfer, /metrics parses as Prometheus text and agrees with /api/session, and
the admin's control actions (start now, expected, drop, stop) work through the API, behind
the token when the page listens beyond loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.classroom import parse_final, receiver_argv
from lab.net import IFNAME, Lab, LabHost, lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]

PORT = 9780
LINK_MBIT = 12  # the sender's link: 24 MiB take ~17 s, long enough to look at
CHROMIUM = shutil.which("chromium")

# One HTTP request from inside a namespace: prints {"status": ..., "body": ...}.
_CLIENT = """
import json, sys, urllib.request, urllib.error
method, url, body, token = sys.argv[1:5]
headers = {"Content-Type": "application/json"}
if token:
    headers["X-Mcastd-Token"] = token
req = urllib.request.Request(url, data=body.encode() if method == "POST" else None,
                             headers=headers, method=method)
try:
    with urllib.request.urlopen(req, timeout=5) as resp:
        status, data = resp.status, resp.read().decode()
except urllib.error.HTTPError as exc:
    status, data = exc.code, exc.read().decode()
except OSError as exc:  # not listening yet
    status, data = 0, json.dumps({"error": str(exc)})
print(json.dumps({"status": status, "body": data}))
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "random.img"
    write_image(path, 24 << 20, seed=11, kind="random")
    return path


class Serve:
    """A running `mcastd serve --status`, its stdout lines collected by a thread."""

    def __init__(self, lab: Lab, image: Path, status: str, min_receivers: int,
                 stderr: Path) -> None:
        argv = [sys.executable, "-m", "mcastd", "serve", str(image), "--interface", IFNAME,
                "--min-receivers", str(min_receivers), "--rate", f"{LINK_MBIT}M",
                "--status", status, "--json"]
        with open(stderr, "wb") as err:
            self.proc = lab.popen(lab.sender, argv, stdout=subprocess.PIPE, stderr=err)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def messages(self) -> list[str]:
        texts = []
        for line in list(self.lines):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("event") == "message":
                texts.append(str(data.get("text", "")))
        return texts

    def wait(self, timeout: float) -> tuple[int, dict[str, Any] | None]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code, parse_final("".join(self.lines))


def http(lab: Lab, host: LabHost, method: str, url: str, body: Any = None,
         token: str = "") -> tuple[int, Any]:
    argv = [sys.executable, "-c", _CLIENT, method, url,
            json.dumps(body) if body is not None else "", token]
    out = lab.run(host, argv, capture_output=True, timeout=20, check=True).stdout
    answer = json.loads(out)
    text = answer["body"]
    try:
        return answer["status"], json.loads(text)
    except ValueError:
        return answer["status"], text


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def start_receivers(lab: Lab, tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i, host in enumerate(lab.receivers):
        target = tmp_path / f"target{i}.img"
        target.write_bytes(b"")
        procs.append(lab.popen(host, receiver_argv(target), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE))
    return procs


def receiver_final(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    stdout, _ = proc.communicate(timeout=timeout)
    final = parse_final(stdout.decode(errors="replace"))
    return proc.returncode, str(final.get("message", "")) if final else ""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(2) as built:
        # Slowed before serve starts, so its first datagram already meets the slow link.
        built.set_rate(built.sender, LINK_MBIT)
        yield built


def chromium(lab: Lab, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args]
    return lab.run(lab.sender, argv, capture_output=True, timeout=90)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")
def test_the_page_shows_every_laptop_live_and_metrics_match_the_api(
        lab: Lab, image: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    serve = Serve(lab, image, f"127.0.0.1:{PORT}", min_receivers=2,
                  stderr=tmp_path / "serve.err")
    receivers = start_receivers(lab, tmp_path)
    base = f"http://127.0.0.1:{PORT}"

    def both_receiving() -> dict[str, Any] | None:
        status, session = http(lab, lab.sender, "GET", f"{base}/api/session")
        rows = session["receivers"] if status == 200 else []
        if len(rows) == 2 and all(r["state"] == "receiving" and 5 < r["percent"] < 50
                                  for r in rows):
            return dict(session)
        return None

    wait_for("both laptops receiving", both_receiving)
    with tempfile.TemporaryDirectory() as profile:
        dom = chromium(lab, Path(profile), "--dump-dom", f"{base}/")
    html = dom.stdout.decode(errors="replace")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rows = [part for part in html.split("<tr ")[1:] if "data-receiver=" in part]
    assert len(rows) == 2, html
    for host in lab.receivers:
        (row,) = [r for r in rows if f'data-receiver="{host.ip}:' in r]
        assert '<td class="state">receiving</td>' in row, row
        assert '<td class="num percent">' in row and " %</td>" in row, row
    assert '<b id="joined">2/2</b>' in html, html
    assert '<b id="state">sending</b>' in html, html

    shot = tmp_path / "status.png"
    with tempfile.TemporaryDirectory() as profile:
        done = chromium(lab, Path(profile), f"--screenshot={shot}", "--window-size=1200,800",
                        f"{base}/")
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, len(png)

    # /metrics parses as Prometheus text, and agrees with /api/session read right after.
    status, text = http(lab, lab.sender, "GET", f"{base}/metrics")
    assert status == 200
    _, session = http(lab, lab.sender, "GET", f"{base}/api/session")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("mcastd_joined_receivers", ())] == 2
    assert samples[("mcastd_expected_receivers", ())] == session["expected"] == 2
    assert samples[("mcastd_receivers", (("state", "receiving"),))] == 2
    assert samples[("mcastd_session_state", (("state", "sending"),))] == 1
    assert samples[("mcastd_image_bytes", ())] == session["image_size"] == image.stat().st_size
    assert samples[("mcastd_sent_bytes_total", ())] > 0
    assert ("mcastd_repair_bytes_total", ()) in samples
    assert ("mcastd_send_rate_bits", ()) in samples
    for row in session["receivers"]:
        percent = samples[("mcastd_receiver_percent", (("receiver", row["addr"]),))]
        assert abs(percent - row["percent"]) < 20  # a snapshot apart (0.25 s)
        assert 0 < percent < 100

    # On loopback a control action needs no token (a harmless one: the transfer runs).
    status, answer = http(lab, lab.sender, "POST", f"{base}/api/expected", {"expected": 2})
    assert status == 200, answer

    # The page watched, the session still ends as it would have.
    code, final = serve.wait(timeout=120)
    assert code == 0 and final is not None and final["ok"], final
    for proc in receivers:
        assert receiver_final(proc, 30)[0] == 0


def test_the_admin_starts_drops_and_stops_through_the_api_with_the_token(
        lab: Lab, image: Path, tmp_path: Path) -> None:
    serve = Serve(lab, image, f"0.0.0.0:{PORT}", min_receivers=3,
                  stderr=tmp_path / "serve.err")
    url = wait_for("the status page's address", lambda: next(
        (m.split(": ", 1)[1] for m in serve.messages() if m.startswith("status page: ")), None))
    assert "?token=" in url, url
    base, token = url.split("/?token=")
    assert base == f"http://{lab.sender.ip}:{PORT}"
    receivers = start_receivers(lab, tmp_path)
    # The admin's laptop: another host of the lab reaching the sender's address.
    admin = lab.receivers[0]

    def session() -> dict[str, Any]:
        status, data = http(lab, admin, "GET", f"{base}/api/session")
        assert status in (0, 200), data
        return dict(data) if status == 200 else {"joined": 0}

    wait_for("two laptops joined", lambda: session()["joined"] == 2)
    assert session()["state"] == "waiting" and session()["expected"] == 3

    # Without the token (or with a wrong one), no control action is taken.
    for wrong in ("", "not-the-token"):
        status, answer = http(lab, admin, "POST", f"{base}/api/start", {}, token=wrong)
        assert status == 403 and "token" in answer["error"], answer
    assert session()["state"] == "waiting"
    # Bad requests get a 4xx and one sentence, and the sender serves on.
    for path, body, expected_status in (("/api/expected", {"expected": 0}, 400),
                                        ("/api/drop", {"receiver": "10.9.9.9:1"}, 409),
                                        ("/api/stop", {"pad": "x" * 10_000}, 413),
                                        ("/nothing", None, 404)):
        status, answer = http(lab, admin, "POST" if body is not None else "GET",
                              f"{base}{path}", body, token)
        assert status == expected_status and answer["error"].endswith("."), answer
    assert session()["state"] == "waiting"

    status, answer = http(lab, admin, "POST", f"{base}/api/expected", {"expected": 4}, token)
    assert status == 200, answer
    now = session()
    assert (now["joined"], now["expected"]) == (2, 4)
    assert '<b id="joined">' not in answer  # (JSON, not the page)

    status, answer = http(lab, admin, "POST", f"{base}/api/start", {}, token)
    assert status == 200, answer
    wait_for("the transfer started", lambda: session()["state"] == "sending", timeout=10)

    dropped = lab.receivers[1]
    row = next(r for r in session()["receivers"] if r["addr"].startswith(f"{dropped.ip}:"))
    status, answer = http(lab, admin, "POST", f"{base}/api/drop", {"receiver": row["addr"]},
                          token)
    assert status == 200, answer
    code, message = receiver_final(receivers[1], 30)
    assert code != 0 and "dropped by the admin" in message, message
    # The page reads the snapshot the daemon makes every 0.25 s: the next one shows it.
    after = wait_for("the drop in the table", lambda: {
        r["addr"]: r for r in session()["receivers"]
        if r["addr"] == row["addr"] and r["state"] == "dropped"}, timeout=5)
    assert after[row["addr"]]["reason"] == "dropped by the admin"
    status, answer = http(lab, admin, "POST", f"{base}/api/drop", {"receiver": row["addr"]},
                          token)
    assert status == 409, answer  # finished already

    assert session()["state"] == "sending"  # the other laptop is still being served
    status, answer = http(lab, admin, "POST", f"{base}/api/stop", {}, token)
    assert status == 200, answer
    code, final = serve.wait(timeout=30)
    assert code != 0 and final is not None and not final["ok"]
    assert "stopped by the admin" in final["message"], final
    code, message = receiver_final(receivers[0], 30)
    assert code != 0 and "stopped by the admin" in message, message
