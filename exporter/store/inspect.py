"""What snapshots an output folder holds: committed ones with counts, and unfinished ones."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from exporter.rows import TABLES
from exporter.store.snapshot import SnapshotError, open_filesystem


def _children(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))


def _rows(fs: pafs.FileSystem, directory: str) -> tuple[int, int]:
    rows = files = 0
    for info in _children(fs, directory):
        if info.is_file and info.base_name.endswith(".parquet") and not info.base_name.startswith("."):
            with fs.open_input_file(info.path) as f:
                rows += pq.ParquetFile(f).metadata.num_rows
            files += 1
    return rows, files


def snapshots(out: str) -> list[dict[str, Any]]:
    """What OUT holds; SnapshotError if it is no folder or cannot be read."""
    fs, root = open_filesystem(out)
    try:
        kind = fs.get_file_info(root).type
        if kind == pafs.FileType.NotFound:
            raise SnapshotError(f"{out}: no such folder")
        if kind != pafs.FileType.Directory:
            raise SnapshotError(f"{out}: not a folder")
        return _snapshots(fs, root)
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot read {out}: {exc}") from None


def _snapshots(fs: pafs.FileSystem, root: str) -> list[dict[str, Any]]:
    ids: set[str] = set()
    for t in TABLES:
        for info in _children(fs, f"{root}/{t.name}"):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("snapshot_id="):
                ids.add(info.base_name.split("=", 1)[1])
    found = []
    for sid in sorted(ids):
        entry: dict[str, Any] = {"snapshot_id": sid, "state": "committed", "tables": {}}
        for t in TABLES:
            rows, files = _rows(fs, f"{root}/{t.name}/snapshot_id={sid}")
            entry["tables"][t.name] = {"rows": rows, "files": files}
        mpath = f"{root}/_manifests/{sid}.json"
        if fs.get_file_info(mpath).is_file:
            with fs.open_input_stream(mpath) as f:
                m = orjson.loads(f.read())
            entry.update(status=m.get("status"), started_at=m.get("started_at"),
                         finished_at=m.get("finished_at"), failures=len(m.get("failures", [])),
                         scope=m.get("scope"), canvas_host=m.get("canvas_host"))
        found.append(entry)
    for info in _children(fs, f"{root}/_staging"):
        if info.type == pafs.FileType.Directory:
            found.append({"snapshot_id": info.base_name, "state": "unfinished (resume with --resume)"})
    return found


def describe(found: list[dict[str, Any]], out: str) -> str:
    if not found:
        return f"{out}: no snapshots"
    lines = [f"{out}: {len(found)} snapshot(s)"]
    for e in found:
        if e["state"] != "committed":
            lines.append(f"  {e['snapshot_id']}  {e['state']}")
            continue
        t = e["tables"]
        status = e.get("status", "no manifest")
        failures = f", {e['failures']} failed item(s)" if e.get("failures") else ""
        lines.append(f"  {e['snapshot_id']}  {status}{failures}  sections {t['sections']['rows']:,}  "
                     f"section_users {t['section_users']['rows']:,}  ({e.get('canvas_host', '?')})")
    return "\n".join(lines)
