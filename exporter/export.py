"""One export run, start to end: open the snapshot, crawl, commit, write the manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import orjson

from exporter import __version__
from exporter.arrow_thread import ArrowThread
from exporter.canvas.client import CanvasClient
from exporter.canvas.errors import CanvasError, RunAborted
from exporter.config import CrawlConfig
from exporter.crawl import Crawler, Progress, ResumeState
from exporter.rows import TABLES
from exporter.store.snapshot import Snapshot, SnapshotError, new_snapshot_id

log = logging.getLogger("exporter")


@dataclass(frozen=True)
class ExportResult:
    snapshot_id: str
    status: str  # "complete" or "partial"
    manifest: dict[str, Any]
    manifest_path: str


def latest_staged(out: str) -> str | None:
    """The unfinished snapshot in OUT whose run started last, for `--resume` without `--snapshot-id`."""
    snap = Snapshot(out, "probe", TABLES)
    from pyarrow import fs as pafs

    info = snap.fs.get_file_info(pafs.FileSelector(f"{snap.root}/_staging", allow_not_found=True))
    names = [i.base_name for i in info if i.type == pafs.FileType.Directory]

    def started(name: str) -> tuple[str, str]:
        """When the run that started it began (its run.json), then its name: not the name alone, which sorts
        `weekly` after `20261204T231700Z` and `-10` before `-2`. One without a readable run.json is oldest."""
        try:
            with snap.fs.open_input_stream(f"{snap.root}/_staging/{name}/run.json") as f:
                return str(orjson.loads(f.read())["started_at"]), name
        except (OSError, ValueError, KeyError, TypeError):
            return "", name

    return max(names, key=started) if names else None


def _fresh_default_snapshot(out: str, base_id: str) -> Snapshot:
    """The default id is the run's start second; a second run in the same second gets `-2`, `-3`, ..."""
    for n in range(1, 1000):
        snapshot = Snapshot(out, base_id if n == 1 else f"{base_id}-{n}", TABLES)
        if not snapshot.is_committed() and not snapshot.has_staging():
            return snapshot
    raise SnapshotError(f"no free snapshot id near {base_id} in {out}")


def run_info(config: CrawlConfig, snapshot_id: str, started: datetime) -> dict[str, Any]:
    c = config.client
    return {
        "snapshot_id": snapshot_id,
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "canvas_host": urlsplit(c.base_url).netloc,
        "base_url": c.base_url,
        "scope": config.scope.describe(),
        "options": {
            "concurrency": c.concurrency, "max_rps": c.max_rps, "per_page": c.per_page,
            "section_includes": list(config.section_includes), "user_includes": list(config.user_includes),
        },
        "exporter_version": __version__,
    }


# What a resumed run must share with the run that started the snapshot, or the snapshot would mix two exports:
# (where in run.json, the option that sets it)
_IDENTITY = ((("base_url",), "--base-url"), (("scope",), "the scope (--account, --course)"),
             (("options", "section_includes"), "--include"), (("options", "user_includes"), "--user-include"))


def _same_export(info: dict[str, Any], earlier: dict[str, Any]) -> None:
    """Raise SnapshotError naming each option in which this run differs from the one that started the
    snapshot it would resume."""
    differences = []
    for keys, option in _IDENTITY:
        then, now = earlier, info
        for key in keys:
            then = then.get(key) if isinstance(then, dict) else None
            now = now.get(key) if isinstance(now, dict) else None
        if then is not None and _same_form(then) != _same_form(now):
            differences.append(f"{option} was {_shown(then)}, now {_shown(now)}")
    if differences:
        raise SnapshotError(f"--resume: snapshot {info['snapshot_id']} was started with other options ("
                            + "; ".join(differences) + "); resume it with the same ones, or start a new snapshot "
                            "(another --snapshot-id)")


def _same_form(value: Any) -> Any:
    """What an option means, not how it was typed: a URL without its trailing slash, lists in any order."""
    if isinstance(value, str):
        return value.rstrip("/")
    if isinstance(value, list):
        return sorted(map(str, value))
    if isinstance(value, dict):
        return {k: _same_form(v) for k, v in value.items()}
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


async def export(config: CrawlConfig, progress: Progress | None = None) -> ExportResult:
    """Run one export. Raises RunAborted or SnapshotError when nothing could be committed."""
    started = datetime.now(timezone.utc).replace(microsecond=0)
    snapshot_id = config.snapshot_id
    if snapshot_id is None and config.resume:
        snapshot_id = latest_staged(config.out)
        if snapshot_id is None:
            raise SnapshotError(f"--resume: no unfinished snapshot in {config.out}")
    if snapshot_id is None:
        snapshot = _fresh_default_snapshot(config.out, new_snapshot_id(started))
        snapshot_id = snapshot.snapshot_id
    else:
        snapshot = Snapshot(config.out, snapshot_id, TABLES)
    snapshot.checkpoint_seconds = config.checkpoint_seconds

    if config.resume and snapshot.has_staging() and snapshot.pending_commit():
        snapshot.claim()
        try:
            snapshot.finish_commit()  # the earlier run died while committing: finish it
        finally:
            snapshot.unlock()
        manifest = _load_manifest(snapshot)
        return ExportResult(snapshot_id, manifest["status"], manifest, snapshot.manifest_path)

    arrow = ArrowThread()  # the run's one thread for typing pages and encoding Parquet
    try:
        return await _crawl_and_commit(config, snapshot, started, progress, arrow)
    except CanvasError as exc:
        try:
            exc.staged_as = snapshot_id if snapshot.has_staging() else None
        except OSError:
            pass
        raise
    finally:
        arrow.close()
        snapshot.unlock()


async def _crawl_and_commit(config: CrawlConfig, snapshot: Snapshot, started: datetime,
                            progress: Progress | None, arrow: ArrowThread) -> ExportResult:
    snapshot_id = snapshot.snapshot_id
    info = run_info(config, snapshot_id, started)
    earlier = snapshot.open(info, resume=config.resume, check=partial(_same_export, info))
    resume_state = ResumeState.from_journal(snapshot.journal)
    progress = progress or Progress()
    async with CanvasClient(config.client) as client:
        try:
            crawler = Crawler(config, client, snapshot, arrow, resume_state, progress)
            await crawler.run()
        except BaseException as exc:
            snapshot.abandon_open_files()
            # An error (not an interruption, which says "rerun with --resume") before anything was made
            # durable leaves nothing worth resuming: a fresh run's staging goes.
            if earlier is None and isinstance(exc, Exception):
                snapshot.discard_if_nothing_durable()
            raise
        stats = client.stats.as_dict()
        throttle = {"final_limit": client.limit.limit, "lowest_limit": int(client.limit.lowest)}

    finished = datetime.now(timezone.utc).replace(microsecond=0)
    status = "partial" if progress.failures else "complete"
    try:
        await arrow.run_sync(snapshot.close_parts)  # the rows still buffered, encoded where the rest were
    except OSError as exc:
        snapshot.abandon_open_files()
        raise RunAborted(f"cannot write the snapshot to {snapshot.root}: {exc}") from exc
    tables = {name: {"rows": s.rows, "files": s.files} for name, s in snapshot.stats().items()}
    manifest = {
        **info,
        "status": status,
        "started_at": (earlier or info)["started_at"],
        "finished_at": finished.isoformat().replace("+00:00", "Z"),
        "resumed": earlier is not None,
        "tables": tables,
        "courses": {"in_scope": progress.courses_total, "done": progress.courses_done},
        "sections": {"found": progress.sections_found, "done": progress.sections_done},
        "duplicates_dropped": progress.duplicates_dropped,
        "lists_walked_again": progress.lists_walked_again,
        "requests": {**stats, **throttle},
        "decoding": crawler.decoder.stats.as_dict(),
        "failures": [f.as_dict() for f in progress.failures],
    }
    try:
        snapshot.commit(manifest)
    except OSError as exc:
        raise RunAborted(f"cannot commit the snapshot in {snapshot.root}: {exc}") from exc
    return ExportResult(snapshot_id, status, manifest, snapshot.manifest_path)


def _load_manifest(snapshot: Snapshot) -> dict[str, Any]:
    import orjson

    with snapshot.fs.open_input_stream(snapshot.manifest_path) as f:
        return orjson.loads(f.read())
