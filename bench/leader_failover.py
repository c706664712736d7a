"""Leader election failover: how long after a leading process is killed (-9) a standby leads, over N kills.

Real locks, real processes: a child process leads (``spaces.runtime.leader.Leadership`` with the defaults that
``spaces serve --roles controller`` uses: a standby polls every second), this process stands by; each round
kills the leader and times until the standby leads, then hands the lock back to a fresh child. This is the
election part of a controller failover; the whole of it (the new leader building its backend and adopting what
runs) is measured by tests/scaleout (its output prints it).

    python bench/leader_failover.py [--kills 10] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchstats import percentile  # noqa: E402

from spaces.runtime.leader import Leadership, make_lock  # noqa: E402

CHILD = """
import sys, time
from pathlib import Path
from spaces.runtime.leader import Leadership, make_lock
leading = Leadership(make_lock(sys.argv[1], Path(sys.argv[2])), on_elected=lambda: print("leading", flush=True),
                     on_lost=lambda: None)
leading.start(first_here=True)
time.sleep(600)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="failover-", dir="/var/tmp"))
    drop = lambda: None  # noqa: E731
    url = f"sqlite:///{data / 'spaces.db'}"
    if args.database == "postgres":
        from harness import create_postgres_database

        url, drop = create_postgres_database("spaces_failover")
    times = []
    try:
        for _ in range(args.kills):
            child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(data)], stdout=subprocess.PIPE, text=True)
            assert child.stdout.readline().strip() == "leading"
            standby = Leadership(make_lock(url, data), on_elected=lambda: None, on_lost=lambda: None)
            standby.start()
            time.sleep(0.3 + (len(times) % 7) / 10)  # kills fall at different points of the standby's poll
            os.kill(child.pid, signal.SIGKILL)
            killed = time.monotonic()
            child.wait()
            while not standby.leading:
                time.sleep(0.005)
            times.append(time.monotonic() - killed)
            standby.stop()
    finally:
        drop()
    print(f"{args.database}: {len(times)} kills, standby leads after p50 {percentile(times, 50):.2f} s, "
          f"max {max(times):.2f} s (poll every 1 s)")


if __name__ == "__main__":
    main()
