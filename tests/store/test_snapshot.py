import os

import pyarrow.dataset as ds
import pytest

from exporter.rows import SECTION_USERS, SECTIONS, TABLES, to_batch
from exporter.store.snapshot import Snapshot, SnapshotError


def section_batch(ids, course=1):
    return [to_batch(SECTIONS, [{"id": i, "course_id": course, "name": f"S{i}"} for i in ids], "/p")]


def user_batch(section, users):
    return [to_batch(SECTION_USERS, [{"id": u, "name": f"U{u}"} for u in users], "/p",
                     {"section_id": section, "course_id": 1})]


def _add(snap, table, unit, batches):
    if snap.add(table, unit, batches):
        snap.settle(table)


def visible_rows(out, table):
    path = os.path.join(out, table)
    if not os.path.exists(path):
        return []
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def test_nothing_visible_until_commit(tmp_path):
    out = str(tmp_path)
    snap = Snapshot(out, "S1", TABLES, row_group_rows=2, file_rows=3)
    snap.open({"scope": {}}, resume=False)
    _add(snap, SECTIONS, {"course": "1", "sections": [[1, 1], [2, 1]]}, section_batch([1, 2]))
    _add(snap, SECTIONS, {"course": "2", "sections": [[3, 1]]}, section_batch([3]))  # rotates: 3 rows
    _add(snap, SECTION_USERS, 1, user_batch(1, [10, 11]))
    assert visible_rows(out, "sections") == [] and visible_rows(out, "section_users") == []
    snap.commit({"status": "complete"})
    assert sorted(r["id"] for r in visible_rows(out, "sections")) == [1, 2, 3]
    assert {r["snapshot_id"] for r in visible_rows(out, "sections")} == {"S1"}
    assert sorted(r["user_id"] for r in visible_rows(out, "section_users")) == [10, 11]
    assert not os.path.exists(tmp_path / "_staging" / "S1")
    assert os.path.exists(tmp_path / "_manifests" / "S1.json")


def test_empty_table_still_has_a_schema_file(tmp_path):
    snap = Snapshot(str(tmp_path), "S1", TABLES)
    snap.open({}, resume=False)
    snap.commit({"status": "complete"})
    table = ds.dataset(str(tmp_path / "section_users"), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 0 and table.schema.field("user_id") is not None


def test_crash_keeps_only_journaled_units(tmp_path):
    out = str(tmp_path)
    first = Snapshot(out, "S1", TABLES, file_rows=2)
    first.open({"scope": {"a": 1}}, resume=False)
    _add(first, SECTION_USERS, 1, user_batch(1, [10, 11]))  # file closes at 2 rows: journaled
    _add(first, SECTION_USERS, 2, user_batch(2, [12]))  # still in an open temporary file
    # -- the process dies here: nothing is closed --
    again = Snapshot(out, "S1", TABLES, file_rows=2)
    with pytest.raises(SnapshotError, match="--resume"):
        again.open({"scope": {"a": 1}}, resume=False)
    earlier = again.open({"scope": {"a": 1}}, resume=True)
    assert earlier == {"scope": {"a": 1}}
    assert [u for e in again.journal for u in e["units"]] == [1]
    _add(again, SECTION_USERS, 2, user_batch(2, [12]))
    again.commit({"status": "complete"})
    assert sorted(r["user_id"] for r in visible_rows(out, "section_users")) == [10, 11, 12]


def test_committed_snapshot_is_never_overwritten(tmp_path):
    snap = Snapshot(str(tmp_path), "S1", TABLES)
    snap.open({}, resume=False)
    snap.commit({"status": "complete"})
    with pytest.raises(SnapshotError, match="already committed"):
        Snapshot(str(tmp_path), "S1", TABLES).open({}, resume=False)


def test_interrupted_commit_is_finished_on_resume(tmp_path):
    snap = Snapshot(str(tmp_path), "S1", TABLES)
    snap.open({}, resume=False)
    _add(snap, SECTIONS, {"course": "1", "sections": [[1, 1]]}, section_batch([1]))
    snap.close_parts()
    from exporter.store.snapshot import _write_json
    _write_json(snap.fs, f"{snap.staging}/commit.json", {"status": "complete"})
    # moved one table, then died
    snap.fs.create_dir(f"{snap.root}/sections", recursive=True)
    snap.fs.move(f"{snap.staging}/sections", snap.committed_dir(SECTIONS))
    again = Snapshot(str(tmp_path), "S1", TABLES)
    assert again.pending_commit()
    again.finish_commit()
    assert [r["id"] for r in visible_rows(str(tmp_path), "sections")] == [1]
    assert os.path.exists(tmp_path / "section_users" / "snapshot_id=S1")


def test_units_added_while_a_write_runs_are_journaled_with_their_own_file(tmp_path):
    """The crawl takes a chunk, writes it on a worker thread, and meanwhile adds more units: a file closed by
    that write must journal only the units whose rows it holds; the later units go with a later file."""
    import orjson

    snap = Snapshot(str(tmp_path), "S1", TABLES, row_group_rows=2, file_rows=2)
    snap.open({"scope": {}}, resume=False)
    assert snap.add(SECTION_USERS, 1, user_batch(1, [10, 11]))  # a row group's worth: due
    chunk = snap.take(SECTION_USERS)
    snap.add(SECTION_USERS, 2, user_batch(2, [20]))  # arrives while the chunk is being written
    snap.write(SECTION_USERS, chunk)  # 2 rows: the file is full and closes
    entries = [orjson.loads(p.read_bytes()) for p in sorted((tmp_path / "_staging" / "S1" / "journal").iterdir())]
    assert [(e["units"], e["rows"]) for e in entries] == [([1], 2)]
    snap.commit({"status": "complete"})
    rows = sorted((r["section_id"], r["user_id"]) for r in visible_rows(str(tmp_path), "section_users"))
    assert rows == [(1, 10), (1, 11), (2, 20)]


def test_unique_columns_are_written_plain_and_the_rest_with_a_dictionary(tmp_path):
    """A column whose values are unique per user (ids, logins, emails) gets no Parquet dictionary; a column
    whose values repeat (the section, the course, the name) keeps one."""
    import glob

    import pyarrow.parquet as pq

    snap = Snapshot(str(tmp_path), "S1", TABLES)
    snap.open({"scope": {}}, resume=False)
    users = [{"id": u, "name": f"U{u % 3}", "login_id": f"u{u}", "email": f"u{u}@example.edu"} for u in range(50)]
    _add(snap, SECTION_USERS, 1, [to_batch(SECTION_USERS, users, "/p", {"section_id": 7, "course_id": 1})])
    snap.commit({"status": "complete"})
    [path] = glob.glob(str(tmp_path / "section_users" / "*" / "*.parquet"))
    group = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {group.column(i).path_in_schema: group.column(i).has_dictionary_page
                  for i in range(group.num_columns)}
    assert set(SECTION_USERS.unique) == {"user_id", "sis_user_id", "integration_id", "login_id", "email",
                                         "created_at"}
    assert {name for name, has in dictionary.items() if not has} == set(SECTION_USERS.unique)
    assert dictionary["section_id"] and dictionary["name"]
    assert sorted(r["login_id"] for r in visible_rows(str(tmp_path), "section_users")) == sorted(
        f"u{u}" for u in range(50))


def test_a_committed_snapshot_holds_only_its_part_files(tmp_path):
    """The rows are flushed and the files closed before the commit (as the crawl does on its Arrow thread),
    and again by the commit itself: the second time opens nothing, so no temporary is left behind."""
    import re

    snap = Snapshot(str(tmp_path), "S1", TABLES, row_group_rows=2)
    snap.open({"scope": {}}, resume=False)
    _add(snap, SECTIONS, {"course": "1", "sections": [[1, 1]]}, section_batch([1]))
    _add(snap, SECTION_USERS, 1, user_batch(1, [10, 11, 12]))
    _add(snap, SECTION_USERS, 2, [])  # a section with nobody in it
    snap.close_parts()
    snap.commit({"status": "complete"})
    for table in ("sections", "section_users"):
        names = os.listdir(tmp_path / table / "snapshot_id=S1")
        assert names and all(re.fullmatch(r"part-\d{5}-[0-9a-f]{8}\.parquet", n) for n in names), names
    assert sorted(r["user_id"] for r in visible_rows(str(tmp_path), "section_users")) == [10, 11, 12]


def test_a_snapshot_another_live_run_is_writing_is_refused(tmp_path):
    """A --resume started while the first run still writes the snapshot (overlapping cron jobs): both would
    commit, each moving the other's part files, and the snapshot held every roster twice."""
    import socket

    out = str(tmp_path)
    (tmp_path / "_staging").mkdir()
    lock = tmp_path / "_staging" / "S1.lock"
    lock.write_text(f"1 {socket.gethostname()}\n")  # pid 1 lives as long as the machine does
    with pytest.raises(SnapshotError, match=r"being written by another run \(pid 1 on .*remove .*S1.lock"):
        Snapshot(out, "S1", TABLES).open({"scope": {}}, resume=True)
    assert lock.read_text().startswith("1 ")  # not taken over

    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that is gone
    lock.write_text(f"{dead} {socket.gethostname()}\n")
    snap = Snapshot(out, "S1", TABLES)
    snap.open({"scope": {}}, resume=True)  # a lock left by a killed run is taken over
    assert lock.read_text().startswith(f"{os.getpid()} ")
    snap.unlock()
    assert not lock.exists()
