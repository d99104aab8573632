"""A snapshot: staged part files, a journal of what they hold, and an all-or-nothing commit.

Layout under OUT (a local path, or a URI a pyarrow filesystem understands):

    _staging/<ID>/run.json                       the run's scope and options (for --resume checks)
    _staging/<ID>/<table>/part-*.parquet         closed part files of the snapshot being written
    _staging/<ID>/journal/<table>-<n>.json       one per closed part file: its rows and the units it holds
    _staging/<ID>/commit.json                    written just before commit starts; finishing it is idempotent
    <table>/snapshot_id=<ID>/part-*.parquet      committed: visible to readers
    _manifests/<ID>.json                         what the run did

Readers globbing `OUT/<table>/*/*.parquet` never see `_staging`. A part file is written under a temporary
name and renamed when closed; a journal entry is written after its part file is closed, so after a
crash every journaled unit is wholly in closed files, and files without a journal entry are discarded.
A unit (a course's section list, a section's roster) is never split across part files.
On a local filesystem each table's snapshot directory appears with one rename.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from exporter.rows import Table

log = logging.getLogger("exporter.snapshot")
ROW_GROUP_ROWS = 64 * 1024
FILE_ROWS = 1024 * 1024
CHECKPOINT_SECONDS = 30.0  # a part file open longer than this is closed (journaled) at the next unit


def failpoint(name: str) -> None:
    """Crash here, as SIGKILL would, when CANVAS_EXPORT_FAILPOINT names this point (crash-safety tests)."""
    if os.environ.get("CANVAS_EXPORT_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class SnapshotError(Exception):
    """The output folder cannot hold this snapshot (already committed, unreadable, not writable)."""


def new_snapshot_id(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def open_filesystem(out: str) -> tuple[pafs.FileSystem, str]:
    if "://" in out:
        try:
            fs, root = pafs.FileSystem.from_uri(out)
        except (OSError, pa.ArrowException) as exc:  # an unknown scheme, a URI pyarrow cannot parse
            raise SnapshotError(f"{out}: not a folder or a filesystem URI pyarrow can open ({exc})") from None
        return fs, root.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(out)


def _write_json(fs: pafs.FileSystem, path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    fs.move(tmp, path)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _read_json(fs: pafs.FileSystem, path: str) -> Any:
    with fs.open_input_stream(path) as f:
        return orjson.loads(f.read())


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


@dataclass
class TableStats:
    rows: int = 0
    files: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows buffered for one table and the units they complete, taken to be written together."""

    batches: list[pa.RecordBatch]
    rows: int
    units: list[Any]


class _TableWriter:
    """Writes one table's part files.

    `add` and `take` run on the caller's thread (the event loop); `write` may run on a worker thread while
    more units are added, but only one `write` at a time. A unit reaches the journal only with the file that
    holds its rows, so a crash leaves no unit half written."""

    def __init__(self, snapshot: Snapshot, table: Table, first_seq: int) -> None:
        self.snapshot = snapshot
        self.table = table
        self.dir = f"{snapshot.staging}/{table.name}"
        self.seq = first_seq
        self.stats = TableStats()
        self._pending: list[pa.RecordBatch] = []  # added, not yet taken
        self._pending_rows = 0
        self._units: list[Any] = []
        self._file_rows = 0  # written into the open part file
        self._file_units: list[Any] = []
        self._opened = time.monotonic()
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None
        self._tmp = ""
        self._final = ""

    def add(self, unit: Any, batches: list[pa.RecordBatch]) -> bool:
        """Buffer a unit's rows (cheap). True when there is file work to do (`due`)."""
        for batch in batches:
            if batch.num_rows:
                self._pending.append(batch)
                self._pending_rows += batch.num_rows
        self._units.append(unit)
        return self.due()

    def backlog(self) -> float:
        """Row groups' worth of rows buffered and not yet taken."""
        return self._pending_rows / self.snapshot.row_group_rows

    def due(self) -> bool:
        """A row group's worth is buffered, or the open file should be closed (size, or checkpoint time)."""
        return self._pending_rows >= self.snapshot.row_group_rows or (
            bool(self._units or self._file_units) and self._file_due())

    def _file_due(self, rows: int | None = None) -> bool:
        """Whether the open file should close once `rows` more are in it (default: those pending)."""
        rows = self._pending_rows if rows is None else rows
        return (self._file_rows + rows >= self.snapshot.file_rows
                or time.monotonic() - self._opened >= self.snapshot.checkpoint_seconds)

    def take(self) -> Chunk:
        chunk = Chunk(self._pending, self._pending_rows, self._units)
        self._pending, self._pending_rows, self._units = [], 0, []
        return chunk

    def write(self, chunk: Chunk, close: bool | None = None) -> None:
        """Write a taken chunk as a row group, and close the file when due, or as `close` says (slow: off
        the event loop)."""
        self._write_rows(chunk)
        if self._file_units and (self._file_due() if close is None else close):
            self._close()

    def closes_after(self, chunk: Chunk) -> bool:
        """Whether writing `chunk` now would close the file (read on the thread that took the chunk)."""
        return bool(self._file_units or chunk.units) and self._file_due(chunk.rows)

    def settle(self) -> None:
        self.write(self.take())

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            name = f"part-{self.seq:05d}-{self.snapshot.run_tag}.parquet"
            self._final = f"{self.dir}/{name}"
            self._tmp = f"{self.dir}/.{name}.tmp"
            self.snapshot.fs.create_dir(self.dir, recursive=True)
            self._sink = self.snapshot.fs.open_output_stream(self._tmp)
            self._writer = pq.ParquetWriter(self._sink, self.table.schema, compression="zstd",
                                            write_statistics=True,
                                            use_dictionary=self.table.dictionary_columns)
        return self._writer

    def _write_rows(self, chunk: Chunk) -> None:
        if chunk.rows:  # a file is opened for rows, or to close (`_close`): never left open with neither
            writer = self._open()
            # The pages' rows as they are, not first copied into one contiguous table: the copy made Parquet
            # encode a 64Ki-row group about 10 ms faster, and cost 12-15 MB of peak RSS at every size.
            data = pa.Table.from_batches(chunk.batches, schema=self.table.schema)
            chunk.batches.clear()
            writer.write_table(data, row_group_size=chunk.rows)
            self._file_rows += chunk.rows
        self._file_units += chunk.units

    def close_file(self, force: bool = False) -> None:
        """Write what is buffered and close the current part file, journaling its units (if any). On the
        caller's thread, with no `write` running."""
        self._write_rows(self.take())
        if self._file_units or force:
            self._close()

    def _close(self) -> None:
        self._open().close()  # units without rows (an empty roster) still get a file that journals them
        self._sink.close()
        self.snapshot.fs.move(self._tmp, self._final)
        failpoint("part-closed")
        entry = {"table": self.table.name, "file": self._final.rsplit("/", 1)[1], "rows": self._file_rows,
                 "units": self._file_units}
        _write_json(self.snapshot.fs, f"{self.snapshot.staging}/journal/{self.table.name}-{self.seq:05d}-"
                    f"{self.snapshot.run_tag}.json", entry)
        failpoint("journal-written")
        self.stats.rows += self._file_rows
        self.stats.files += 1
        self.seq += 1
        self._writer, self._file_units, self._file_rows = None, [], 0
        self._opened = time.monotonic()


@dataclass
class Snapshot:
    """One snapshot of every table, staged until `commit`."""

    out: str
    snapshot_id: str
    tables: tuple[Table, ...]
    row_group_rows: int = ROW_GROUP_ROWS
    file_rows: int = FILE_ROWS
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    fs: pafs.FileSystem = field(init=False)
    root: str = field(init=False)

    def __post_init__(self) -> None:
        self.fs, self.root = open_filesystem(self.out)
        self.staging = f"{self.root}/_staging/{self.snapshot_id}"
        self.run_tag = uuid.uuid4().hex[:8]
        self._writers: dict[str, _TableWriter] = {}
        self.journal: list[dict[str, Any]] = []

    # -- paths ---------------------------------------------------------------------------------------------
    def committed_dir(self, table: Table) -> str:
        return f"{self.root}/{table.name}/snapshot_id={self.snapshot_id}"

    @property
    def manifest_path(self) -> str:
        return f"{self.root}/_manifests/{self.snapshot_id}.json"

    # -- lifecycle -----------------------------------------------------------------------------------------
    def is_committed(self) -> bool:
        return _exists(self.fs, self.manifest_path) or any(_exists(self.fs, self.committed_dir(t))
                                                           for t in self.tables)

    def has_staging(self) -> bool:
        return _exists(self.fs, self.staging)

    def open(self, run_info: dict[str, Any], resume: bool,
             check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
        """Prepare staging. With `resume`, keep journaled parts and return the info of the run that started
        the snapshot, after `check(info)` (which raises if this run cannot continue it); that info is kept,
        not replaced by this run's."""
        if self.is_committed():
            raise SnapshotError(f"snapshot {self.snapshot_id} is already committed in {self.root}; "
                                "choose another --snapshot-id")
        self.claim()
        earlier = None
        if self.has_staging():
            if not resume:
                raise SnapshotError(f"an unfinished snapshot {self.snapshot_id} is staged in {self.staging}; "
                                    "pass --resume to continue it, or choose another --snapshot-id")
            earlier = _read_json(self.fs, f"{self.staging}/run.json") if _exists(
                self.fs, f"{self.staging}/run.json") else None
            if earlier is not None and check is not None:
                check(earlier)
            self._load_journal()
        try:
            self.fs.create_dir(f"{self.staging}/journal", recursive=True)
            if earlier is None:
                _write_json(self.fs, f"{self.staging}/run.json", run_info)
        except OSError as exc:
            raise SnapshotError(f"cannot write to {self.root}: {exc}") from exc
        first_seq = 1 + max((int(e["_seq"]) for e in self.journal), default=0)
        for t in self.tables:
            self._writers[t.name] = _TableWriter(self, t, first_seq)
        return earlier

    def claim(self) -> None:
        """Claim the snapshot for this process: `_staging/<ID>.lock`, made only if absent. Two runs on one
        snapshot (a --resume started while the first still runs) would move each other's part files at
        commit. A lock whose process is gone (same host), or is this one, is taken over. Local folders only:
        an object store has no file that is made only if absent."""
        if not isinstance(self.fs, pafs.LocalFileSystem):
            return
        path = f"{self.root}/_staging/{self.snapshot_id}.lock"
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(path) as f:
                        pid_text, host = f.read().split()
                    pid = int(pid_text)
                except (OSError, ValueError):
                    pid, host = 0, "?"
                if host == socket.gethostname() and (pid == os.getpid() or not _alive(pid)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # left by a run that was killed, or by this process before
                    continue
                raise SnapshotError(f"snapshot {self.snapshot_id} is being written by another run (pid {pid} on "
                                    f"{host}); wait for it to end, or remove {path} if it is gone") from None
            except OSError as exc:
                raise SnapshotError(f"cannot write to {self.root}: {exc}") from exc
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            self._lock_path = path
            return

    def unlock(self) -> None:
        """Give the snapshot up (idempotent)."""
        path, self._lock_path = getattr(self, "_lock_path", None), None
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _load_journal(self) -> None:
        """Read the journal and delete part files no entry vouches for (cut short by a crash)."""
        jdir = f"{self.staging}/journal"
        entries = []
        if _exists(self.fs, jdir):
            for info in self.fs.get_file_info(pafs.FileSelector(jdir)):
                if info.is_file and info.base_name.endswith(".json"):
                    entry = self._whole_entry(info.path)
                    if entry is not None:
                        entry["_seq"] = info.base_name.split("-")[-2]
                        entries.append(entry)
                elif info.is_file:
                    self.fs.delete_file(info.path)  # a journal entry's own temporary
        kept = {(e["table"], e["file"]) for e in entries}
        for t in self.tables:
            tdir = f"{self.staging}/{t.name}"
            if not _exists(self.fs, tdir):
                continue
            for info in self.fs.get_file_info(pafs.FileSelector(tdir)):
                if (t.name, info.base_name) not in kept:
                    self.fs.delete_file(info.path)
        self.journal = entries

    def _whole_entry(self, path: str) -> dict[str, Any] | None:
        """A journal entry, if it and the part file it vouches for are whole (the file is there, with the rows
        the entry counts). Else None, and the entry is removed: its part file goes with the files no entry
        vouches for, and its units are fetched again. Entries and part files are written whole, then moved
        into place, so only a hand, a full disk or a power cut before the data reached it can damage them."""
        try:
            entry = _read_json(self.fs, path)
            with self.fs.open_input_file(f"{self.staging}/{entry['table']}/{entry['file']}") as f:
                rows = pq.read_metadata(f).num_rows
            if rows != entry["rows"]:
                raise ValueError(f"its part file holds {rows} rows, the entry says {entry['rows']}")
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:  # JSONDecodeError: a ValueError
            log.warning("resume: journal entry %s, or the part file it names, is damaged (%s); its units are "
                        "fetched again", path.rsplit("/", 1)[-1], exc)
            self.fs.delete_file(path)
            return None
        return entry

    def add(self, table: Table, unit: Any, batches: list[pa.RecordBatch]) -> bool:
        """Buffer a unit's rows; True when there is file work to do: `settle(table)`, or `take` on this
        thread and `write` on a worker thread (one write per table at a time)."""
        return self._writers[table.name].add(unit, batches)

    def due(self, table: Table) -> bool:
        return self._writers[table.name].due()

    def backlog(self, table: Table) -> float:
        """Row groups' worth of rows buffered for `table` and not yet taken."""
        return self._writers[table.name].backlog()

    def take(self, table: Table) -> Chunk:
        return self._writers[table.name].take()

    def write(self, table: Table, chunk: Chunk, close: bool | None = None) -> None:
        self._writers[table.name].write(chunk, close)

    def closes_after(self, table: Table, chunk: Chunk) -> bool:
        return self._writers[table.name].closes_after(chunk)

    def settle(self, table: Table) -> None:
        self._writers[table.name].settle()

    def stats(self) -> dict[str, TableStats]:
        out = {}
        for t in self.tables:
            s = TableStats(self._writers[t.name].stats.rows, self._writers[t.name].stats.files)
            for e in self.journal:
                if e["table"] == t.name:
                    s.rows += e["rows"]
                    s.files += 1
            out[t.name] = s
        return out

    def close_parts(self) -> None:
        """Close every open part file (all its units become durable). Each table keeps at least one file."""
        for t in self.tables:
            w = self._writers[t.name]
            has_file = w.stats.files or any(e["table"] == t.name for e in self.journal)
            w.close_file(force=not has_file)

    def commit(self, manifest: dict[str, Any]) -> None:
        """Make the snapshot visible: every table's directory, then the manifest."""
        self.close_parts()
        _write_json(self.fs, f"{self.staging}/commit.json", manifest)
        failpoint("commit-intent")
        self.finish_commit()

    def finish_commit(self) -> None:
        manifest = _read_json(self.fs, f"{self.staging}/commit.json")
        for t in self.tables:
            src, dst = f"{self.staging}/{t.name}", self.committed_dir(t)
            if _exists(self.fs, src) and not _exists(self.fs, dst):
                self.fs.create_dir(f"{self.root}/{t.name}", recursive=True)
                self.fs.move(src, dst)
                failpoint("table-moved")
        self.fs.create_dir(f"{self.root}/_manifests", recursive=True)
        _write_json(self.fs, self.manifest_path, manifest)
        failpoint("manifest-written")
        self.fs.delete_dir(self.staging)

    def pending_commit(self) -> bool:
        return _exists(self.fs, f"{self.staging}/commit.json")

    def discard_if_nothing_durable(self) -> None:
        """After a run that failed before any part file was journaled: remove its staging, so that it is
        not left as an unfinished snapshot that a later `--resume` would pick over one with real progress."""
        try:
            journaled = any(i.is_file and i.base_name.endswith(".json") for i in
                            self.fs.get_file_info(pafs.FileSelector(f"{self.staging}/journal", allow_not_found=True)))
            if not journaled and self.has_staging():
                self.fs.delete_dir(self.staging)
                self.unlock()
                if isinstance(self.fs, pafs.LocalFileSystem):  # and `_staging` itself, if that left it empty:
                    os.rmdir(f"{self.root}/_staging")  # rmdir removes only an empty folder (another run's
                    # staging, made meanwhile, stays); object stores have no empty folders to leave
        except OSError:  # best effort: the run is failing already, and its error is the one to report
            pass

    def abandon_open_files(self) -> None:
        """After a failure: close open temporaries without journaling them (resume discards them)."""
        for w in self._writers.values():
            if w._writer is not None:
                for closable in (w._writer, w._sink):
                    try:
                        closable.close()
                    except Exception:  # noqa: BLE001 - best effort on an already failing path
                        pass
                w._writer = None
