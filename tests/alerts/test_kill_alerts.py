"""Killing `citycloud alerts` mid-way never sends a message twice nor loses one: the intent is
recorded before a message leaves and `sent` right after (citycloud/alerts/notify.py)."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from tests.alerts.conftest import make_warehouse, write_config
from tests.faults.conftest import Paused, citycloud

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("phase", ["alerts.before_send", "alerts.after_sent"])
def test_a_kill_mid_way_neither_repeats_nor_loses_a_message(phase, settings, receiver, robots, tmp_path):
    make_warehouse(settings.warehouse, deliveries=[("430100", "ratings", date(2026, 3, 10), 100, 0)])
    config = write_config(tmp_path / "alerts.yml", receiver)
    args = ["alerts", "--warehouse", str(settings.warehouse), "--config", str(config), "--as-of", "2026-03-12T09:00"]
    paused = Paused(args, phase, tmp_path)
    assert paused.details["message"] == "open"
    paused.kill()
    assert len(receiver.posts) == (1 if phase == "alerts.after_sent" else 0)
    done = citycloud(args)
    assert done.stdout.strip().splitlines()[-1] == (
        f"alerts: 2 open, {3 if phase == 'alerts.after_sent' else 4} message(s) sent, 0 pending")
    sent = Counter((p["path"], p["json"].get("key") or p["json"]["markdown"].get("title")) for p in receiver.posts)
    assert sent == {("/hook", "delivery|430100|ratings||2026-03-11"): 1, ("/hook", "anomaly|430100|dau||2026-03-10"): 1,
                    ("/robot/wecom", None): 1, ("/robot/dingtalk", "citycloud 数据交付 430100 2026-03-11"): 1}
    assert citycloud(args).stdout.strip().splitlines()[-1] == "alerts: 2 open, 0 message(s) sent, 0 pending"
    assert len(receiver.posts) == 4
