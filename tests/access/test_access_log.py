"""The access log is appended whole: a process killed while writing leaves no half line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

WRITER = """
import sys
from citycloud.access import AccessLog
log = AccessLog(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    log.record(surface="dashboard", action="view", target="today", subject=f"p{i}@example.org",
               role="operator", cities=["430100"], detail="x" * 280)
    i += 1
"""


def test_a_killed_writer_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "access_log.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                env=dict(os.environ)) for _ in range(2)]
    for w in writers:
        assert w.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    for w in writers:
        w.send_signal(signal.SIGKILL)
        w.wait()
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert len(lines) > 300
    assert all(e["detail"] == "x" * 280 and e["cities"] == ["430100"] for e in lines)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
