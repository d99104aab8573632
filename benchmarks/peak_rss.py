"""Run a command and write its wall time, peak RSS and CPU time as JSON: a small `/usr/bin/time -v`.

    python benchmarks/peak_rss.py RESULT.json TIMEOUT_S COMMAND ARG ...

Why a separate process: Linux keeps, in a process's peak RSS, the peak of the memory it had before exec.
A child forked straight from the benchmark harness (which holds ground truths of hundreds of MB) would report
the harness's peak, not its own. Forked from this small process instead, the command's `ru_maxrss` is its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    result_path, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    started = time.monotonic()
    child = subprocess.Popen(argv)
    signal.signal(signal.SIGALRM, lambda *_: os.kill(child.pid, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _, status, usage = os.wait4(child.pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as f:
        json.dump({"pid": child.pid, "returncode": code, "wall_s": wall, "peak_rss_kb": usage.ru_maxrss,
                   "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
