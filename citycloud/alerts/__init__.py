"""Alerts (alerts.md, docs/alerts.md): delivery problems and KPI anomalies, each sent once to the
channels alerts.yml routes it to, and one `resolved` when it goes away.

`send_alerts` is the one entry point: `citycloud alerts`, the end of `citycloud run --alerts` and
the daily DAG's last task all call it."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from citycloud import db
from citycloud.alerts import config as alerts_config
from citycloud.alerts import notify
from citycloud.alerts.detect import open_alerts
from citycloud.config import Settings


def send_alerts(settings: Settings, config_path: Path | str, as_of: datetime | None = None, dry_run: bool = False,
                say: Callable[[str], None] = print) -> str:
    """Find what is open as of `as_of` (default now), queue what is new or gone, send what is
    pending. Dry run: say what would be queued and send and record nothing. The summary line."""
    config = alerts_config.load(config_path)
    as_of = as_of or datetime.now(timezone.utc)
    if dry_run:
        con = db.connect(settings.warehouse, read_only=True, settings=settings)
        try:
            actions = notify.plan(con, config, open_alerts(con, settings, as_of))
        finally:
            con.close()
        queued = [a for a in actions if a[0] in ("add", "reopen")]
        for _, _, channel, message, body in queued:
            say(f"  would send to {channel} ({message}): {body['message']}")
        return f"alerts (dry run): {len(queued)} message(s) would be sent; nothing sent or recorded"
    with db.writer_lock(settings):
        con = db.connect(settings.warehouse, settings=settings)
        try:
            alerts = open_alerts(con, settings, as_of)
            actions = notify.plan(con, config, alerts)
            notify.apply(con, actions)
            out = notify.send_pending(con, config, settings)
        finally:
            con.close()
    for line in out.sent:
        say(f"  sent {line}")
    for channel, why in out.failed.items():
        say(f"  WARNING channel {channel} failed ({why}): its messages stay pending for the next run")
    return (f"alerts: {len(alerts)} open, {len(out.sent)} message(s) sent, {out.pending} pending"
            + (f" (channels failing: {', '.join(out.failed)})" if out.failed else ""))
