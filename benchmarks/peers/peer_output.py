"""What both peers share: the two tables' column names, writing them with pyarrow, and the stats file.

A user's script would inline this; it lives here once so the two peers write the same columns, which the
benchmark's ground-truth check (`exporter.sim.compare`) reads. Types are whatever `pyarrow.Table.from_pylist`
infers from the Python values, the way such scripts do it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SECTION_COLUMNS = [
    "id", "course_id", "name", "sis_section_id", "sis_course_id", "integration_id", "sis_import_id",
    "nonxlist_course_id", "start_at", "end_at", "created_at", "restrict_enrollments_to_section_dates",
    "total_students",
]
USER_COLUMNS = [  # section_users = section_id, course_id, user_id (the user's "id"), then these
    "name", "sortable_name", "short_name", "sis_user_id", "integration_id", "login_id", "email", "avatar_url",
    "pronouns", "created_at",
]
TIMESTAMP_COLUMNS = {"start_at", "end_at", "created_at"}


def write_table(out: str, table: str, snapshot_id: str, rows: list[dict[str, Any]]) -> None:
    folder = Path(out) / table / f"snapshot_id={snapshot_id}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet", compression="zstd")


def write_stats(path: str | None, stats: dict[str, Any]) -> None:
    text = json.dumps(stats)
    if path:
        Path(path).write_text(text)
    print(text)
