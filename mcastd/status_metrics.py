"""/metrics: the latest snapshot in Prometheus' text exposition format (version 0.0.4), so a
room's sessions can be graphed and alerted on with the usual tools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from driver.report import SenderSnapshot

# Every state a laptop's row can show (mcastd/serve.py receiver_state): each gets its
# sample, zero or not, so a graph's series do not come and go.
RECEIVER_STATES = ("joining", "comparing", "receiving", "lagging", "verifying", "done",
                   "failed", "disk error", "dropped")
SESSION_STATES = ("starting", "waiting", "sending", "complete")


def label_value(text: str) -> str:
    """A label value, escaped as the format asks (backslash, quote, newline)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metrics:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {number(value)}" if text
                              else f"{name} {number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(snapshot: SenderSnapshot | None, expected: int) -> str:
    m = _Metrics()
    rows = snapshot.receivers if snapshot is not None else []
    state = snapshot.state if snapshot is not None else "starting"
    m.family("mcastd_session_state", "gauge", "1 for the session's current state.",
             (({"state": s}, 1.0 if s == state else 0.0) for s in SESSION_STATES))
    m.family("mcastd_expected_receivers", "gauge",
             "Receivers the start waits for (--min-receivers, or as the admin set it).",
             [({}, expected)])
    m.family("mcastd_joined_receivers", "gauge", "Receivers that joined the session.",
             [({}, len(rows))])
    counts = Counter(row.state for row in rows)
    m.family("mcastd_receivers", "gauge", "Receivers in each state.",
             (({"state": s}, counts[s]) for s in RECEIVER_STATES))
    if snapshot is None:
        return m.text()
    m.family("mcastd_image_bytes", "gauge", "Size of the image served.",
             [({}, snapshot.image_size)])
    m.family("mcastd_progress_percent", "gauge",
             "Overall progress: what the slowest active receiver stored, percent.",
             [({}, snapshot.percent)])
    m.family("mcastd_sent_bytes_total", "counter", "Data bytes sent, repairs included.",
             [({}, snapshot.sent_bytes)])
    m.family("mcastd_repair_bytes_total", "counter",
             "Data bytes sent as NAK-driven repair.", [({}, snapshot.repair_bytes)])
    m.family("mcastd_send_rate_bits", "gauge", "Data sent lately, bits per second.",
             [({}, snapshot.rate_bps)])
    m.family("mcastd_eta_seconds", "gauge", "Estimated seconds left (absent when unknown).",
             [({}, snapshot.eta)] if snapshot.eta is not None else [])
    m.family("mcastd_elapsed_seconds", "gauge", "Seconds since the sender started.",
             [({}, snapshot.elapsed)])

    def per_receiver(value: str) -> list[tuple[dict[str, str], float]]:
        return [({"receiver": row.addr}, float(getattr(row, value))) for row in rows]

    m.family("mcastd_receiver_percent", "gauge", "Percent of the image each receiver stored.",
             per_receiver("percent"))
    m.family("mcastd_receiver_rate_bits", "gauge",
             "Image bits each receiver stored per second lately.", per_receiver("rate_bps"))
    m.family("mcastd_receiver_loss_ratio", "gauge",
             "Share of the datagrams each receiver lost, as it reported (0..1).",
             per_receiver("loss"))
    m.family("mcastd_receiver_info", "gauge",
             "1 per receiver, with its state and the MAC it reported (if any).",
             [({"receiver": row.addr, "state": row.state, "mac": row.host.get("mac", "")}, 1.0)
              for row in rows])
    return m.text()
