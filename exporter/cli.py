"""Command line: arguments and environment → a frozen config → a run. Printing and exit codes live here only.

Exit statuses:
    0   everything in scope was exported and committed
    2   nothing was committed: bad arguments, bad token, unreachable host, unwritable output
    3   the snapshot was committed, but some items failed (each is listed in the manifest)
    130 interrupted: nothing committed; rerun with --resume to continue
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
import orjson

from exporter import __version__
from exporter.arrow_thread import limit_malloc_arenas
from exporter.canvas.errors import CanvasError, unwrap_group
from exporter.canvas.refs import RefError, account_ref, course_ref
from exporter.canvas.tokens import TokenFinder
from exporter.config import (
    DEFAULT_SECTION_INCLUDES,
    DEFAULT_USER_INCLUDES,
    ClientConfig,
    ConfigError,
    CrawlConfig,
    Scope,
    Secret,
    Timeouts,
)
from exporter.crawl import Progress
from exporter.export import ExportResult, export
from exporter.store.snapshot import SnapshotError

EXIT_OK, EXIT_NOTHING_COMMITTED, EXIT_PARTIAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 3, 130, 143

log = logging.getLogger("exporter")


class UsageError(Exception):
    """Bad arguments: the message says which and why."""


# -- argument parsing -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canvas-export", allow_abbrev=False,
        description="Export Canvas LMS sections and section rosters to Parquet datasets.",
        epilog="Exit status: 0 all exported; 3 committed with failed items (see the manifest); "
               "2 nothing committed; 130 interrupted (rerun with --resume).",
    )
    parser.add_argument("--version", action="version", version=f"canvas-export {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crawl = sub.add_parser("crawl", allow_abbrev=False, help="export sections and rosters from a Canvas instance",
                           description="Export every section of the courses in scope, and every section's "
                                       "users, into OUT/sections and OUT/section_users. The token comes from "
                                       "CANVAS_API_TOKEN or --token-file.")
    crawl.add_argument("--base-url", default=os.environ.get("CANVAS_BASE_URL"),
                       help="Canvas URL, e.g. https://canvas.example.edu (default: $CANVAS_BASE_URL)")
    scope = crawl.add_argument_group("scope (give one)")
    scope.add_argument("--course", dest="courses", action="extend", nargs="+", default=[], metavar="REF",
                       help="course id or SIS reference such as sis_course_id:MATH-101/F26 (repeatable)")
    scope.add_argument("--courses-file", metavar="PATH", help="file with one course REF per line (# comments)")
    scope.add_argument("--account", metavar="REF",
                       help="every course the account lists (with sub-accounts): 1, sis_account_id:ENG, self")
    _add_output_args(crawl)
    crawl.add_argument("--snapshot-id", help="snapshot name (default: the run's UTC start, YYYYMMDDTHHMMSSZ)")
    crawl.add_argument("--resume", action="store_true",
                       help="continue an interrupted snapshot (the newest, or --snapshot-id's)")
    crawl.add_argument("--checkpoint-seconds", type=float, default=30.0, metavar="S",
                       help="make finished work durable at least this often, so --resume refetches at most "
                            "about S seconds of work (default 30; smaller means more, smaller files)")
    crawl.add_argument("--no-recheck", action="store_true",
                       help="skip the second listing of every course's sections that catches sections "
                            "cross-listed while the crawl runs (saves one request per course)")
    crawl.add_argument("--token-file", metavar="PATH", help="read the API token from this file")
    crawl.add_argument("--token", nargs="?", const="", default=None, help=argparse.SUPPRESS)
    _add_tuning_args(crawl)
    crawl.add_argument("--allow-insecure-http", action="store_true",
                       help="allow a plain http base URL that is not loopback (sends the token unencrypted)")
    _add_log_args(crawl)

    demo = sub.add_parser("demo", allow_abbrev=False, help="run the built-in Canvas simulator and crawl it (no network needed)",
                          description="Start the simulator in this process, export its institution, and "
                                      "check the result against the simulator's ground truth.")
    _add_output_args(demo, default_hint="./canvas-export-demo, never $CANVAS_EXPORT_OUT")
    demo.add_argument("--courses", type=int, default=100,
                      help="size of the simulated institution (courses; default 100)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the simulated institution (default 1)")
    _add_tuning_args(demo)
    _add_log_args(demo)

    sim = sub.add_parser("simulate", allow_abbrev=False, help="serve a simulated Canvas on 127.0.0.1",
                         description="Serve a seeded synthetic Canvas institution on 127.0.0.1 until Ctrl-C.")
    sim.add_argument("--port", type=int, default=8800, help="port on 127.0.0.1 (default 8800)")
    sim.add_argument("--courses", type=int, default=100,
                     help="size of the simulated institution (courses; default 100)")
    sim.add_argument("--seed", type=int, default=1, help="seed of the simulated institution (default 1)")
    sim.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    sim.add_argument("--throttle", action="store_true", help="switch on Canvas's leaky-bucket throttle")
    sim.add_argument("--throttle-429", action="store_true", help="throttle with 429 instead of Canvas's 403")
    sim.add_argument("--request-cost", type=float, default=None, help="throttle cost of one request (seconds)")
    sim.add_argument("--faults", nargs="*", default=[], metavar="NAME=RATE",
                     help="fault rates, e.g. error=0.05 reset=0.01 truncate=0.01 stall=0.005 throttle=0.01 link_loop=0.001")
    sim.add_argument("--truth-out", metavar="DIR", help="write the ground truth (JSON lines) to DIR")

    insp = sub.add_parser("inspect", allow_abbrev=False, help="list the snapshots a folder holds, with counts")
    insp.add_argument("dir", metavar="DIR")
    insp.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_output_args(p: argparse.ArgumentParser, default_hint: str = "$CANVAS_EXPORT_OUT or ./canvas-export") -> None:
    p.add_argument("--out", default=None, help=f"output folder or URI (default: {default_hint})")


def _add_tuning_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=int, default=32, help="most requests in flight (default 32)")
    p.add_argument("--max-rps", type=float, default=None, help="hard cap on requests per second")
    p.add_argument("--per-page", type=int, default=100, help="page size asked of Canvas, 1-100 (default 100)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="abandon (and retry) an attempt after S seconds without data (default 60)")
    p.add_argument("--include", default=",".join(DEFAULT_SECTION_INCLUDES), metavar="LIST",
                   help="include[] values for the sections list, comma-separated, or 'none' "
                        f"(default {','.join(DEFAULT_SECTION_INCLUDES)})")
    p.add_argument("--user-include", default=",".join(DEFAULT_USER_INCLUDES), metavar="LIST",
                   help="include[] values for the section users list, comma-separated, or 'none' "
                        f"(default {','.join(DEFAULT_USER_INCLUDES)})")


def _add_log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="log each retry and failure")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="log format (default: text on a terminal, json otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")


def _includes(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    for v in values:
        if not v.replace("_", "").isalnum():
            raise UsageError(f"--include value {v!r} is not an include[] name")
    return values


def _read_token(args: argparse.Namespace) -> Secret:
    if args.token_file:
        path = args.token_file
        try:
            mode = os.stat(path).st_mode
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("token file %s is readable by other users; chmod 600 it", path)
        if not token:
            raise UsageError(f"--token-file {path} is empty")
        return Secret(token)
    token = os.environ.get("CANVAS_API_TOKEN", "").strip()
    if not token:
        raise UsageError("no API token: set CANVAS_API_TOKEN or pass --token-file PATH")
    return Secret(token)


def _read_courses_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"--courses-file {path}: {exc.strerror}") from None
    refs = []
    for number, line in enumerate(lines, 1):
        text = line.strip()  # a whole line is one REF: SIS ids may contain '#'
        if text and not text.startswith("#"):
            try:
                course_ref(text)
            except RefError as exc:
                raise UsageError(f"--courses-file {path}, line {number}: {exc}") from None
            refs.append(text)
    if not refs:
        raise UsageError(f"--courses-file {path} names no course")
    return refs


def crawl_config(args: argparse.Namespace, token: Secret) -> CrawlConfig:
    if not args.base_url:
        raise UsageError("no Canvas URL: pass --base-url or set CANVAS_BASE_URL")
    texts = list(args.courses)
    if args.courses_file:
        texts += _read_courses_file(args.courses_file)
    try:
        if texts and args.account:
            raise UsageError("give either courses (--course/--courses-file) or --account, not both")
        if not texts and not args.account:
            raise UsageError("nothing to export: give --course REF, --courses-file PATH or --account REF")
        refs = tuple(dict.fromkeys(course_ref(t) for t in texts))
        scope = Scope(courses=refs) if refs else Scope(account=account_ref(args.account))
        client = ClientConfig(base_url=args.base_url, token=token, concurrency=args.concurrency,
                              max_rps=args.max_rps, per_page=args.per_page, timeouts=_timeouts(args.timeout),
                              allow_insecure_http=args.allow_insecure_http)
        return CrawlConfig(client=client, scope=scope, out=_out(args), snapshot_id=args.snapshot_id,
                           resume=args.resume, section_includes=_includes(args.include),
                           user_includes=_includes(args.user_include),
                           checkpoint_seconds=args.checkpoint_seconds, recheck=not args.no_recheck)
    except (RefError, ConfigError) as exc:
        raise UsageError(str(exc)) from None


def _timeouts(seconds: float) -> Timeouts:
    if seconds <= 0:
        raise UsageError(f"--timeout must be positive, got {seconds}")
    return Timeouts(connect=min(10.0, seconds), read=seconds, total=max(120.0, 2 * seconds))


def _out(args: argparse.Namespace, default: str = "canvas-export") -> str:
    return _folder(args.out or os.environ.get("CANVAS_EXPORT_OUT") or default)


def _folder(out: str) -> str:
    if "://" not in out and os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file; give a folder (it is made if it does not exist)")
    return out


# -- logging and progress ---------------------------------------------------------------------------------------
class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                                "logger": record.name, "msg": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        return orjson.dumps(data).decode()


_SECRETS: list[TokenFinder] = []  # the run's token once read: never printed, whatever a message quotes


def _redacted(text: str) -> str:
    for secret in _SECRETS:
        text = secret.redact(text)
    return text


def _error(command: str, text: str) -> None:
    """One line on stderr, the token removed (a hostile server can put it in a path, a header, a body)."""
    print(_redacted(f"canvas-export {command}: {text}"), file=sys.stderr)


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redacted(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record is emitted (it may be replaced after setup)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def setup_logging(args: argparse.Namespace, token: Secret | None = None) -> None:
    handler = _StderrHandler()
    fmt = args.log_format or ("text" if sys.stderr.isatty() else "json")
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s"))
    if token is not None:
        if all(known.token != token.reveal() for known in _SECRETS):
            _SECRETS.append(TokenFinder(token.reveal()))
        handler.addFilter(_Redact())
    root = logging.getLogger("exporter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    root.propagate = False


async def _show_progress(progress: Progress) -> None:
    """A live progress line on a terminal, redrawn twice a second."""
    while True:
        await anyio.sleep(0.5)
        sys.stderr.write("\r\x1b[K" + _progress_line(progress))
        sys.stderr.flush()


def _progress_line(p: Progress) -> str:
    elapsed = time.monotonic() - p.started
    total = p.courses_total
    eta = ""
    if total and p.courses_done:
        left = elapsed * (total - p.courses_done) / p.courses_done
        eta = f"  ETA {int(left // 60)}:{int(left % 60):02d}"
    courses = f"{p.courses_done}/{total}" if total is not None else f"{p.courses_done}/?"
    return (f"courses {courses}  sections {p.sections_done}/{p.sections_found}  "
            f"rows {p.rows['sections']:,} sections, {p.rows['section_users']:,} users  "
            f"failed {len(p.failures)}  {elapsed:.0f}s{eta}")


class Terminated(Exception):
    """SIGTERM arrived (a service manager or container stopping the run)."""


async def _run_export(config: CrawlConfig, show_progress: bool) -> ExportResult:
    progress = Progress()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_sigterm)
            if show_progress:
                tg.start_soon(_show_progress, progress)
            try:
                return await export(config, progress)
            finally:
                tg.cancel_scope.cancel()
                if show_progress:
                    sys.stderr.write("\r\x1b[K")
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None


async def _stop_on_sigterm() -> None:
    """SIGTERM stops the run as Ctrl-C does: what is durable stays staged for --resume."""
    try:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                raise Terminated()
    except NotImplementedError:  # no signal handlers on this event loop (Windows)
        await anyio.sleep_forever()


def summary(result: ExportResult) -> str:
    m = result.manifest
    t = m["tables"]
    r = m["requests"]
    lines = [
        f"snapshot {result.snapshot_id}: {m['status']}",
        f"  sections       {t['sections']['rows']:>10,} rows in {t['sections']['files']} file(s)",
        f"  section_users  {t['section_users']['rows']:>10,} rows in {t['section_users']['files']} file(s)",
        f"  requests {r['requests']:,}, retries {r['retries']:,}, throttled {r['throttled']:,}, "
        f"{r['bytes'] / 1e6:.1f} MB, {m['started_at']} to {m['finished_at']}",
        f"  manifest {result.manifest_path}",
    ]
    if m["failures"]:
        lines.append(f"  {len(m['failures'])} item(s) failed:")
        for f in m["failures"][:10]:
            lines.append(f"    {f['item']}: {f['path']}: {f['reason']}")
        if len(m["failures"]) > 10:
            lines.append(f"    ... and {len(m['failures']) - 10} more in the manifest")
    return "\n".join(lines)


def event_loop_options() -> dict[str, bool]:
    """uvloop where it is installed (a dependency on Linux and macOS): the same asyncio API, with the event loop
    and its sockets in C (5-8% less exporter CPU on the benchmark's 517k-row crawl). CANVAS_EXPORT_NO_UVLOOP=1
    keeps asyncio's own loop, to compare, or where uvloop misbehaves."""
    if os.environ.get("CANVAS_EXPORT_NO_UVLOOP"):
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


# -- commands ---------------------------------------------------------------------------------------------------
def cmd_crawl(args: argparse.Namespace) -> int:
    if args.token is not None:  # never echo it: it is a secret the user just exposed to `ps`
        raise UsageError("the token is not taken from a flag (it would show in ps and shell history); "
                         "set CANVAS_API_TOKEN or use --token-file PATH")
    setup_logging(args)
    token = _read_token(args)
    setup_logging(args, token)
    config = crawl_config(args, token)
    result = anyio.run(_run_export, config, _want_progress(args), backend_options=event_loop_options())
    _print(_redacted(summary(result)))
    return EXIT_OK if result.status == "complete" else EXIT_PARTIAL


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging(args)
    from exporter.demo import run_demo

    # not CANVAS_EXPORT_OUT: that names the user's real export folder, no place for simulated data
    return run_demo(args, _folder(args.out or "canvas-export-demo"), _want_progress(args))


def cmd_simulate(args: argparse.Namespace) -> int:
    from exporter.demo import run_simulate

    return run_simulate(args)


def cmd_inspect(args: argparse.Namespace) -> int:
    from exporter.store.inspect import describe, snapshots

    try:
        found = snapshots(args.dir)
    except SnapshotError as exc:  # nothing was to be committed: say only what is wrong with DIR
        raise UsageError(str(exc)) from None
    _print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() if args.json else describe(found, args.dir))
    return EXIT_OK


def _print(text: str) -> None:
    """Print a command's result. A reader that has gone (`| head -1`) is no error: the work is done."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush fails no more


def _want_progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and not args.no_progress


COMMANDS = {"crawl": cmd_crawl, "demo": cmd_demo, "simulate": cmd_simulate, "inspect": cmd_inspect}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_malloc_arenas()
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        _error(args.command, str(exc))
        return EXIT_NOTHING_COMMITTED
    except (CanvasError, SnapshotError) as exc:  # RunAborted and the rest of the client's errors
        staged = getattr(exc, "staged_as", None)
        _error(args.command, f"nothing committed: {exc}" + (
            f"; what was made durable is staged as snapshot {staged}: once the cause is fixed, rerun with "
            "--resume to continue" if staged else ""))
        return EXIT_NOTHING_COMMITTED
    except KeyboardInterrupt:
        print(f"canvas-export {args.command}: interrupted; nothing committed. Rerun with --resume to continue.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"canvas-export {args.command}: terminated (SIGTERM); nothing committed. Rerun with --resume to "
              "continue.", file=sys.stderr)
        return EXIT_TERMINATED
