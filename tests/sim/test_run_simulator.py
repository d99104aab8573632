"""The blocking entry point behind `canvas-export simulate`."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import orjson
import pytest

from exporter.sim import ADMIN_TOKEN, SimOptions, run_simulator

SCRIPT = ("from exporter.sim import SimOptions, run_simulator; "
          "run_simulator(SimOptions(courses=3), port=0, truth_out=sys.argv[1])")


def test_refuses_to_bind_anything_but_loopback() -> None:
    with pytest.raises(ValueError):
        run_simulator(SimOptions(courses=1), host="0.0.0.0")


def test_serves_until_interrupted(tmp_path) -> None:  # noqa: ANN001
    proc = subprocess.Popen([sys.executable, "-c", "import sys; " + SCRIPT, str(tmp_path / "truth")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("Canvas simulator at http://127.0.0.1:")
        base = first.split()[3]
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines == [f"export CANVAS_BASE_URL={base}\n", f"export CANVAS_API_TOKEN={ADMIN_TOKEN}\n"]
        request = urllib.request.Request(f"{base}/api/v1/accounts/self/courses",
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200 and isinstance(orjson.loads(r.read()), list)
        assert (tmp_path / "truth" / "sections.jsonl").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()  # never left behind, whatever happened above
            proc.wait()
    assert proc.stderr.read().strip().endswith("stopped")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_sigint_even_if_inherited_ignored_and_on_sigterm(tmp_path, signum) -> None:  # noqa: ANN001
    # started with SIGINT ignored, as a shell without job control starts a background job
    proc = subprocess.Popen([sys.executable, "-c", "import sys; " + SCRIPT, str(tmp_path / "truth")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout.readline().startswith("Canvas simulator at")
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read().strip().endswith("stopped")
    finally:
        proc.kill()
        proc.wait()
