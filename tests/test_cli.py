"""The command line as a user meets it: exit statuses, messages, the token's safety, inspect, demo."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from exporter.cli import main
from exporter.sim import ADMIN_TOKEN, Institution
from tests.simthread import threaded_simulator


@pytest.fixture(scope="module")
def sim():
    with threaded_simulator(Institution.generate(seed=11, courses=8, large_sections=0)) as s:
        yield s


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("CANVAS_API_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("CANVAS_BASE_URL", raising=False)
    monkeypatch.delenv("CANVAS_EXPORT_OUT", raising=False)
    return ADMIN_TOKEN


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_complete_crawl_exits_0_and_counts_match_duckdb(sim, token, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    users = duckdb.sql(f"select count(*) from read_parquet('{out}/section_users/*/*.parquet', "
                       "hive_partitioning=true)").fetchall()[0][0]
    sections = duckdb.sql(f"select count(*) from read_parquet('{out}/sections/*/*.parquet')").fetchall()[0][0]
    assert f"section_users  {users:>10,} rows" in printed.out
    assert f"sections       {sections:>10,} rows" in printed.out
    assert files_containing(tmp_path, token.encode()) == []
    assert token not in printed.out + printed.err

    assert main(["inspect", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "complete" in listing and f"section_users {users:,}" in listing


def test_env_vars_give_base_url_and_out(sim, token, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CANVAS_BASE_URL", sim.base_url)
    monkeypatch.setenv("CANVAS_EXPORT_OUT", str(tmp_path / "env-out"))
    course = str(next(iter(sim.institution.account_courses(sim.institution.root_account_id))).id)
    assert main(["crawl", "--course", course, "--snapshot-id", "S-1", "--no-progress"]) == 0
    assert (tmp_path / "env-out" / "_manifests" / "S-1.json").exists()


def test_refused_course_commits_with_status_3(sim, token, tmp_path, capsys):
    victim = next(iter(sim.institution.account_courses(sim.institution.root_account_id))).id
    sim.options.forbidden_courses = {victim}
    try:
        code = main(["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path),
                     "--no-progress"])
    finally:
        sim.options.forbidden_courses = set()
    out = capsys.readouterr().out
    assert code == 3
    assert "1 item(s) failed" in out and f"course {victim}: /api/v1/courses/{victim}/sections" in out


@pytest.mark.parametrize("argv,message", [
    (["--base-url", "URL", "--out", "OUT"], "nothing to export"),
    (["--base-url", "URL", "--account", "1", "--course", "2"], "not both"),
    (["--base-url", "URL", "--course", "MATH-101"], "neither a Canvas id"),
    (["--base-url", "http://canvas.example.edu", "--course", "1"], "plain http"),
    (["--base-url", "canvas.example.edu", "--course", "1"], "must be an http(s) URL"),
    (["--base-url", "URL", "--course", "1", "--per-page", "500"], "between 1 and 100"),
    (["--base-url", "URL", "--course", "1", "--concurrency", "0"], "at least 1"),
    (["--course", "1"], "no Canvas URL"),
    (["--base-url", "URL", "--course", "1", "--snapshot-id", "../x"], "--snapshot-id"),
    (["--base-url", "https://canvas.example.edu:99999", "--course", "1"], "port '99999': a port is a number"),
    (["--base-url", "https://canvas.example.edu:0", "--course", "1"], "port '0': a port is a number"),
    (["--base-url", "https://canvas.example.edu:https", "--course", "1"], "port 'https': a port is a number"),
    (["--base-url", "http://[::1", "--course", "1"], "'http://[::1' is not a valid URL: Invalid IPv6 URL"),
    (["--base-url", "http://[::1]x/", "--course", "1"], "'::1' is not a host name or address"),
    (["--base-url", "https://[1.2.3.4]", "--course", "1"], "is not a valid URL"),
    (["--base-url", "https://canvas .example.edu", "--course", "1"], "contains spaces or control characters"),
    (["--base-url", "https://me:secret@canvas.example.edu:99999", "--course", "1"], "'https://canvas.example"),
    (["--base-url", "https://canvas.example.edu/api/v1/", "--course", "1"],
     "ends with /api/v1: give Canvas's address without it, e.g. https://canvas.example.edu"),
])
def test_bad_arguments_exit_2_with_a_clear_message(sim, token, tmp_path, capsys, argv, message):
    argv = [sim.base_url if a == "URL" else str(tmp_path) if a == "OUT" else a for a in argv]
    assert main(["crawl", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_base_url_message_never_shows_its_credentials(token, tmp_path, capsys):
    argv = ["crawl", "--base-url", "https://me:pa55word@canvas.example.edu:99999", "--course", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "pa55word" not in capsys.readouterr().err


@pytest.mark.parametrize("where", ["missing", "file", "unknown_uri"])
def test_inspect_of_no_folder_exits_2_with_a_clear_message(tmp_path, capsys, where):
    target = {"missing": str(tmp_path / "does" / "not" / "exist"), "file": str(tmp_path / "a-file"),
              "unknown_uri": "nosuchfs://bucket/exports"}[where]
    (tmp_path / "a-file").write_text("not a dataset\n")
    assert main(["inspect", target]) == 2
    err = capsys.readouterr().err
    expected = {"missing": "no such folder", "file": "not a folder", "unknown_uri": "not a folder or a filesystem URI"}
    assert err.startswith(f"canvas-export inspect: {target}: {expected[where]}") and err.count("\n") == 1


def test_inspect_of_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path}: no snapshots\n"


def test_unusable_out_uri_exits_2_with_a_clear_message(sim, token, tmp_path, capsys):
    argv = ["crawl", "--base-url", sim.base_url, "--course", "1", "--out", "nosuchfs://bucket/exports"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nosuchfs://bucket/exports: not a folder or a filesystem URI" in err and err.count("\n") == 1


def test_courses_file_errors_name_the_line(sim, token, tmp_path, capsys):
    f = tmp_path / "courses.txt"
    f.write_text("# our courses\n123\n\nsis_course_id:A#1\nnot-a-ref\n")
    assert main(["crawl", "--base-url", sim.base_url, "--courses-file", str(f), "--out", str(tmp_path)]) == 2
    assert f"--courses-file {f}, line 5:" in capsys.readouterr().err


def test_missing_token_and_token_file(sim, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CANVAS_API_TOKEN", raising=False)
    base = ["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path), "--no-progress"]
    assert main(base) == 2
    assert "no API token" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert main([*base, "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    shared = tmp_path / "token"
    shared.write_text(ADMIN_TOKEN + "\n")
    os.chmod(shared, 0o644)
    assert main([*base, "--token-file", str(shared)]) == 0
    assert "readable by other users" in capsys.readouterr().err
    os.chmod(shared, 0o600)
    assert main([*base, "--token-file", str(shared)]) == 0
    assert "readable" not in capsys.readouterr().err


def test_invalid_token_exits_2_without_echoing_it(sim, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CANVAS_API_TOKEN", "9~wrong-but-secret")
    assert main(["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "refused the API token" in err and "wrong-but-secret" not in err
    assert not (tmp_path / "_manifests").exists()


def test_unreachable_host_exits_2_quickly(token, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["crawl", "--base-url", f"http://127.0.0.1:{port}", "--account", "self",
                 "--out", str(tmp_path)]) == 2
    assert "cannot reach 127.0.0.1" in capsys.readouterr().err


def test_snapshot_id_cannot_be_reused(sim, token, tmp_path, capsys):
    argv = ["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path),
            "--snapshot-id", "same", "--no-progress"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "already committed" in capsys.readouterr().err


def test_demo_runs_and_matches_truth(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--courses", "6", "--no-progress"]) == 0
    assert "Identical to the simulator's ground truth" in capsys.readouterr().out


def test_demo_never_writes_into_the_real_export_folder(tmp_path, capsys, monkeypatch):
    real = tmp_path / "warehouse-exports"
    monkeypatch.setenv("CANVAS_EXPORT_OUT", str(real))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--courses", "3", "--no-progress"]) == 0
    assert not real.exists()
    assert (tmp_path / "canvas-export-demo" / "_manifests").is_dir()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_stopped_run_exits_with_its_signal_status_and_resumes_to_the_truth(token, tmp_path, capsys, how):
    """A service manager stops a run with SIGTERM, a user with Ctrl-C (SIGINT): either way the run says so in
    one line, exits 143 or 130, leaves what was made durable staged, and --resume finishes it."""
    import signal
    import subprocess
    import sys
    import threading

    from exporter.sim import AccountScope, SimOptions, compare, ground_truth

    institution = Institution.generate(seed=12, courses=40, large_sections=0)
    with threaded_simulator(institution, SimOptions(latency_ms=20)) as sim:
        halfway = threading.Event()
        sim.hooks.append(lambda request: halfway.set() if sim.stats.requests >= 40 else None)
        argv = ["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path),
                "--snapshot-id", "S", "--checkpoint-seconds", "0", "--concurrency", "4", "--no-progress"]
        # a new session: the signal goes to the run alone, as `kill` or systemd would send it
        run = subprocess.Popen([sys.executable, "-m", "exporter", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
        try:
            assert halfway.wait(60)
            run.send_signal(getattr(signal, how))
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
        said = err.decode()
        assert run.returncode == {"SIGTERM": 143, "SIGINT": 130}[how], said
        assert "nothing committed. Rerun with --resume" in said and "Traceback" not in said
        assert "terminated (SIGTERM)" in said if how == "SIGTERM" else "interrupted" in said
        assert list((tmp_path / "_staging" / "S" / "journal").iterdir())  # durable work kept for the resume
        assert main([*argv, "--resume"]) == 0
    assert compare(tmp_path, "S", ground_truth(institution, AccountScope("self"))) == []


def test_a_reader_that_goes_away_is_no_error(sim, token, tmp_path):
    """`canvas-export crawl ... | head -1`: the summary finds its reader gone; the snapshot is committed
    all the same, so the run exits 0 without a traceback."""
    import subprocess
    import sys

    run = subprocess.Popen([sys.executable, "-m", "exporter", "crawl", "--base-url", sim.base_url, "--account",
                            "self", "--out", str(tmp_path), "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()  # the reader is gone before the run prints anything
    err = run.stderr.read().decode()
    assert run.wait(60) == 0, err
    assert "Traceback" not in err and err == ""
    assert list((tmp_path / "_manifests").iterdir())


def test_a_token_revoked_mid_run_says_what_is_staged_and_resume_finishes(token, tmp_path, capsys):
    """The token stops working part way (revoked, expired): nothing is committed, and the message says that
    what was made durable is staged, and how to continue once there is a working token."""
    import threading

    from exporter.sim import AccountScope, SimOptions, compare, ground_truth

    institution = Institution.generate(seed=13, courses=30, large_sections=0)
    with threaded_simulator(institution) as sim:
        revoked = threading.Event()

        def revoke(request) -> None:
            if sim.stats.requests >= 60 and not revoked.is_set():
                revoked.set()
                sim.options.tokens.pop(ADMIN_TOKEN)

        sim.hooks.append(revoke)
        argv = ["crawl", "--base-url", sim.base_url, "--account", "self", "--out", str(tmp_path),
                "--snapshot-id", "S", "--checkpoint-seconds", "0", "--concurrency", "2", "--no-progress"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Canvas refused the API token" in err, err
        assert "staged as snapshot S: once the cause is fixed, rerun with --resume" in err
        sim.hooks.remove(revoke)
        sim.options.tokens[ADMIN_TOKEN] = SimOptions().tokens[ADMIN_TOKEN]
        assert main([*argv, "--resume"]) == 0
    assert compare(tmp_path, "S", ground_truth(institution, AccountScope("self"))) == []


@pytest.mark.parametrize("command", ["crawl", "demo"])
def test_an_out_that_is_a_file_is_refused_before_anything_runs(token, tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    extra = ["--base-url", "https://canvas.example.edu", "--course", "1"] if command == "crawl" else []
    assert main([command, *extra, "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "is a file; give a folder" in err and err.count("\n") == 1
