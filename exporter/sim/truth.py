"""Ground truth: the rows a correct crawl of the simulator must produce, and a checker for an export.

The truth is computed from the institution model with the simulator's own rules and JSON builders (never the
exporter's code): every course the account listing returns (or the listed course refs), every section the
sections list returns under them, and each section's users as `/sections/:id/users` lists them with default
parameters, one row per (section, user).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

import orjson

from exporter.sim.auth import ADMIN_TOKEN, DEFAULT_TOKENS, Permissions
from exporter.sim.endpoints import RosterFilter, filtered_roster, users_payload
from exporter.sim.institution import DEFAULT_COURSE_STATES, Course, Institution, gc_paused
from exporter.sim.refs import resolve_account, resolve_course
from exporter.sim.views import STUDENTS_CAP, section_json, stringify_ids

SECTION_COLUMNS = (
    "id", "course_id", "name", "sis_section_id", "sis_course_id", "integration_id", "sis_import_id",
    "nonxlist_course_id", "start_at", "end_at", "created_at", "restrict_enrollments_to_section_dates",
    "total_students", "unknown_fields",
)
SECTION_USER_COLUMNS = (
    "section_id", "course_id", "user_id", "name", "sortable_name", "short_name", "sis_user_id", "integration_id",
    "login_id", "email", "avatar_url", "pronouns", "created_at", "unknown_fields",
)
TIMESTAMP_COLUMNS = frozenset({"start_at", "end_at", "created_at"})
# JSON keys of a user that are columns of section_users (id becomes user_id).
_USER_KEYS = frozenset({"id", "name", "sortable_name", "short_name", "sis_user_id", "integration_id", "login_id",
                        "email", "avatar_url", "pronouns", "created_at"})
_SECTION_KEYS = frozenset(SECTION_COLUMNS) - {"unknown_fields"}
TABLE_KEYS = {"sections": ("id",), "section_users": ("section_id", "user_id")}


@dataclass(frozen=True, slots=True)
class AccountScope:
    ref: str  # "1", "sis_account_id:ENG", "self"


@dataclass(frozen=True, slots=True)
class CourseScope:
    refs: tuple[str, ...]  # "123", "sis_course_id:MATH-101/F26", ... (decoded, as a user types them)

    def __init__(self, refs: Iterable[str]) -> None:
        object.__setattr__(self, "refs", tuple(refs))


@dataclass(slots=True)
class Truth:
    sections: list[dict[str, Any]] = field(default_factory=list)
    section_users: list[dict[str, Any]] = field(default_factory=list)
    course_ids: list[int] = field(default_factory=list)  # the courses in scope, in crawl order

    def write(self, path: str | Path) -> None:
        """sections.jsonl and section_users.jsonl in the folder `path` (created if needed)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in (("sections", self.sections), ("section_users", self.section_users)):
            with open(folder / f"{name}.jsonl", "wb") as f:
                for row in rows:
                    f.write(orjson.dumps(row) + b"\n")


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads the Z as UTC


def section_row(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A section JSON object (as the server sends it, integer ids) as a contract row."""
    row = {c: obj.get(c) for c in SECTION_COLUMNS if c != "unknown_fields"}
    for c in TIMESTAMP_COLUMNS:
        row[c] = _timestamp(row[c])
    row["unknown_fields"] = {k: v for k, v in obj.items() if k not in _SECTION_KEYS} or None
    return row


def section_user_row(section_id: int, course_id: int, obj: Mapping[str, Any]) -> dict[str, Any]:
    get = obj.get
    row: dict[str, Any] = {
        "section_id": section_id, "course_id": course_id, "user_id": obj["id"], "name": get("name"),
        "sortable_name": get("sortable_name"), "short_name": get("short_name"), "sis_user_id": get("sis_user_id"),
        "integration_id": get("integration_id"), "login_id": get("login_id"), "email": get("email"),
        "avatar_url": get("avatar_url"), "pronouns": get("pronouns"), "created_at": _timestamp(get("created_at")),
        "unknown_fields": None,
    }
    if len(obj) > len(_USER_KEYS) or not _USER_KEYS.issuperset(obj):
        row["unknown_fields"] = {k: v for k, v in obj.items() if k not in _USER_KEYS} or None
    return row


def courses_in_scope(inst: Institution, scope: AccountScope | CourseScope, perms: Permissions) -> list[Course]:
    if isinstance(scope, AccountScope):
        account = resolve_account(inst, scope.ref)
        if account is None or not perms.read_course_list:
            return []
        return list(inst.account_courses(account.id, DEFAULT_COURSE_STATES))
    seen: dict[int, Course] = {}
    for ref in scope.refs:
        course = resolve_course(inst, ref)
        if course is not None and course.workflow_state != "deleted":
            seen.setdefault(course.id, course)
    return list(seen.values())


def ground_truth(
    institution: Institution,
    scope: AccountScope | CourseScope,
    *,
    token: str = ADMIN_TOKEN,
    section_includes: Iterable[str] = ("total_students",),
    user_includes: Iterable[str] = ("avatar_url",),
    forbidden_courses: Collection[int] = (),
    tokens: Mapping[str, Permissions] = DEFAULT_TOKENS,
    students_cap: int | None = STUDENTS_CAP,
) -> Truth:
    """What a correct crawl exports. Courses in forbidden_courses (or unreadable by the token) give no rows.
    students_cap must equal the server's SimOptions.students_cap when section_includes has "students"."""
    perms = tokens[token]
    s_includes = frozenset(section_includes)
    u_includes = set(user_includes) | {"sis_user_id", "email"}
    with gc_paused():
        return _walk(institution, scope, perms, s_includes, u_includes, forbidden_courses, students_cap)


def _walk(institution: Institution, scope: AccountScope | CourseScope, perms: Permissions,
          s_includes: frozenset[str], u_includes: set[str], forbidden_courses: Collection[int],
          students_cap: int | None) -> Truth:
    keep_test_students = "test_student" in u_includes
    everyone = RosterFilter(None, False, None, perms)
    truth = Truth()
    for course in courses_in_scope(institution, scope, perms):
        truth.course_ids.append(course.id)
        if course.id in forbidden_courses or not perms.read_roster:
            continue
        for section in institution.course_sections(course.id):
            truth.sections.append(section_row(section_json(institution, section, perms, s_includes,
                                                           students_cap=students_cap)))
            roster = filtered_roster(institution, section.id, everyone)
            if not keep_test_students:
                roster = [r for r in roster if not r.user.fake_student]
            for user in users_payload(institution, roster, perms, u_includes, everyone):
                truth.section_users.append(section_user_row(section.id, section.course_id, user))
    return truth


# ----- checking an export -----

def _normalize(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if column == "unknown_fields":
        if isinstance(value, (str, bytes)):
            value = orjson.loads(value)
        # ids inside may be ints or strings (Accept: application/json+canvas-string-ids): compare as strings
        return stringify_ids(value) or None
    return value


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _read_rows(folder: Path) -> tuple[list[dict[str, Any]], set[str]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    columns: set[str] = set()
    for file in sorted(folder.glob("*.parquet")):
        table = pq.ParquetFile(file).read()
        columns.update(table.column_names)
        rows.extend(table.to_pylist())
    return rows, columns


def compare(out_dir: str | Path, snapshot_id: str, truth: Truth) -> list[str]:
    """Every missing, extra, duplicated or differing row of OUT/<table>/snapshot_id=<ID>/*.parquet.
    An empty list means the export equals the truth."""
    problems: list[str] = []
    for table, columns, expected in (("sections", SECTION_COLUMNS, truth.sections),
                                     ("section_users", SECTION_USER_COLUMNS, truth.section_users)):
        key_cols = TABLE_KEYS[table]
        folder = Path(out_dir) / table / f"snapshot_id={snapshot_id}"
        rows, present = _read_rows(folder)
        if not present and expected:
            problems.append(f"{table}: no Parquet files in {folder}")
        missing_cols = [c for c in columns if c not in present]
        if present and missing_cols:
            problems.append(f"{table}: columns missing from the files: {', '.join(missing_cols)}")
        want = {tuple(r[k] for k in key_cols): r for r in expected}
        got: dict[tuple, dict[str, Any]] = {}
        copies: dict[tuple, int] = {}
        for r in rows:
            key = tuple(r.get(k) for k in key_cols)
            copies[key] = copies.get(key, 0) + 1
            got.setdefault(key, r)

        def name(key: tuple) -> str:
            return f"{table} " + ", ".join(f"{k}={v}" for k, v in zip(key_cols, key))

        for key, n in copies.items():
            if n > 1:
                problems.append(f"{name(key)}: duplicated ({n} rows)")
        for key in sorted(want.keys() - got.keys(), key=str):
            problems.append(f"{name(key)}: missing")
        for key in sorted(got.keys() - want.keys(), key=str):
            problems.append(f"{name(key)}: extra")
        for key in sorted(want.keys() & got.keys(), key=str):
            exp, act = want[key], got[key]
            for c in columns:
                if c not in present:
                    continue
                e, a = _normalize(c, exp.get(c)), _normalize(c, act.get(c))
                if not _same(e, a):
                    problems.append(f"{name(key)}: {c} expected {e!r}, got {a!r}")
    return problems
