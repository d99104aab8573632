"""Ground truth equals a naive walk of the API; compare() finds every kind of difference in Parquet."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exporter.sim import (
    ADMIN_TOKEN,
    NOSIS_TOKEN,
    AccountScope,
    CourseScope,
    Institution,
    SimOptions,
    Simulator,
    Truth,
    compare,
    ground_truth,
)
from exporter.sim.truth import SECTION_COLUMNS, SECTION_USER_COLUMNS

from . import factory as f
from .httpkit import auth, parse_links

# ----- a deliberately simple crawler, written here and nowhere else -----

SECTION_FIELDS = [c for c in SECTION_COLUMNS if c != "unknown_fields"]
USER_FIELDS = ["name", "sortable_name", "short_name", "sis_user_id", "integration_id", "login_id", "email",
               "avatar_url", "pronouns", "created_at"]


async def walk(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Follow rel="next" until it is missing or a page is empty."""
    items: list[dict[str, Any]] = []
    while url:
        async with session.get(aiohttp.client.URL(url, encoded=True)) as r:
            assert r.status == 200, (r.status, url)
            page = orjson.loads(await r.read())
            url = parse_links(r.headers.get("Link")).get("next", "")
        if not page:
            break
        items.extend(page)
    return items


def stamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def to_row(obj: dict[str, Any], fields: list[str], known: set[str], **extra: Any) -> dict[str, Any]:
    row = {**extra, **{k: obj.get(k) for k in fields}}
    for k in ("start_at", "end_at", "created_at"):
        if k in row:
            row[k] = stamp(row[k])
    row["unknown_fields"] = {k: v for k, v in obj.items() if k not in known} or None
    return row


async def crawl(base: str, token: str, course_urls: list[str]) -> tuple[list[dict], list[dict]]:
    sections, users = [], []
    async with aiohttp.ClientSession(headers=auth(token)) as s:
        for course_url in course_urls:
            for sec in await walk(s, f"{course_url}/sections?include[]=total_students&per_page=3"):
                sections.append(to_row(sec, SECTION_FIELDS, set(SECTION_FIELDS)))
                for u in await walk(s, f"{base}/api/v1/sections/{sec['id']}/users?include[]=avatar_url&per_page=7"):
                    users.append(to_row(u, USER_FIELDS, set(USER_FIELDS) | {"id"}, section_id=sec["id"],
                                        course_id=sec["course_id"], user_id=u["id"]))
    return sections, users


async def crawl_account(base: str, token: str, account: str) -> tuple[list[dict], list[dict]]:
    async with aiohttp.ClientSession(headers=auth(token)) as s:
        courses = await walk(s, f"{base}/api/v1/accounts/{account}/courses?per_page=4")
    return await crawl(base, token, [f"{base}/api/v1/courses/{c['id']}" for c in courses])


def by_key(rows: list[dict], *key: str) -> dict[tuple, dict]:
    out = {tuple(r[k] for k in key): r for r in rows}
    assert len(out) == len(rows), "a key appears twice"
    return out


# ----- truth versus the walk -----

@pytest.mark.parametrize("token", ["admin", "nosis"])
async def test_ground_truth_equals_a_naive_walk(token: str) -> None:
    tok = ADMIN_TOKEN if token == "admin" else NOSIS_TOKEN
    inst = Institution.generate(seed=11, courses=30, large_sections=1, large_section_size=(150, 200))
    async with Simulator(inst) as sim:
        sections, users = await crawl_account(sim.base_url, tok, "self")
    truth = ground_truth(inst, AccountScope("self"), token=tok)
    assert len(truth.section_users) > 1000
    assert by_key(sections, "id") == by_key(truth.sections, "id")
    assert by_key(users, "section_id", "user_id") == by_key(truth.section_users, "section_id", "user_id")
    assert sorted(truth.section_users[0]) == sorted(SECTION_USER_COLUMNS)
    assert sorted(truth.sections[0]) == sorted(SECTION_COLUMNS)


async def test_course_scope_with_sis_refs() -> None:
    inst = f.build()
    refs = ["sis_course_id:MATH-101/F26", str(f.DRAFT), "sis_course_id:MATH-101/F26", str(f.GONE), "nope"]
    truth = ground_truth(inst, CourseScope(refs))
    assert truth.course_ids == [f.MATH, f.DRAFT]
    async with Simulator(inst) as sim:
        urls = [f"{sim.base_url}/api/v1/courses/{quote(r, safe=':')}" for r in ("sis_course_id:MATH-101/F26",
                                                                                str(f.DRAFT))]
        sections, users = await crawl(sim.base_url, ADMIN_TOKEN, urls)
    assert by_key(sections, "id") == by_key(truth.sections, "id")
    assert by_key(users, "section_id", "user_id") == by_key(truth.section_users, "section_id", "user_id")
    pending = next(r for r in truth.section_users if r["user_id"] == f.U_PENDING and r["section_id"] == f.S_LAB_A)
    assert pending["sis_user_id"] is None and pending["email"] is None and pending["unknown_fields"] is None
    zoe = next(r for r in truth.section_users if r["user_id"] == f.U_ZOE and r["section_id"] == f.S_LAB_A)
    assert zoe["unknown_fields"] == {"sis_import_id": f.SHARD + 9} and zoe["pronouns"] == "she/her"
    assert not any(r["user_id"] == f.U_TEST for r in truth.section_users)


def test_account_scope_by_sis_and_forbidden_courses() -> None:
    inst = f.build()
    assert ground_truth(inst, AccountScope("sis_account_id:ENG")).course_ids == [f.DRAFT, f.ODD]
    truth = ground_truth(inst, AccountScope("self"), forbidden_courses={f.MATH})
    assert {r["id"] for r in truth.sections} == {f.S_DRAFT, f.S_ODD}
    assert ground_truth(inst, AccountScope("sis_account_id:none")).sections == []


def test_includes_change_unknown_fields() -> None:
    inst = f.build()
    truth = ground_truth(inst, CourseScope([str(f.MATH)]), section_includes=("total_students", "permissions"),
                         user_includes=("avatar_url", "test_student"), token=NOSIS_TOKEN)
    assert all(r["unknown_fields"] == {"permissions": {"manage_calendar": True}} for r in truth.sections)
    assert any(r["user_id"] == f.U_TEST for r in truth.section_users)
    assert all(r["sis_user_id"] is None and r["login_id"] is None for r in truth.section_users)


async def test_hooks_see_every_request_and_can_mutate_mid_crawl() -> None:
    inst = f.build()
    seen: list[str] = []

    def hook(request: Any) -> None:
        seen.append(request.raw_path)
        if len(seen) == 1:
            inst.delete_section(f.S_LAB_B)

    async with Simulator(inst) as sim:
        sim.hooks.append(hook)
        sections, _ = await crawl(sim.base_url, ADMIN_TOKEN, [f"{sim.base_url}/api/v1/courses/{f.MATH}"])
    assert f.S_LAB_B not in {s["id"] for s in sections}
    assert by_key(sections, "id") == by_key(ground_truth(inst, CourseScope([str(f.MATH)])).sections, "id")
    assert len(seen) == sim.stats.requests


# ----- compare() on Parquet -----

SECTION_SCHEMA = pa.schema([
    ("id", pa.int64()), ("course_id", pa.int64()), ("name", pa.string()), ("sis_section_id", pa.string()),
    ("sis_course_id", pa.string()), ("integration_id", pa.string()), ("sis_import_id", pa.int64()),
    ("nonxlist_course_id", pa.int64()), ("start_at", pa.timestamp("us", tz="UTC")),
    ("end_at", pa.timestamp("us", tz="UTC")), ("created_at", pa.timestamp("us", tz="UTC")),
    ("restrict_enrollments_to_section_dates", pa.bool_()), ("total_students", pa.int64()),
    ("unknown_fields", pa.string()),
])
USER_SCHEMA = pa.schema(
    [("section_id", pa.int64()), ("course_id", pa.int64()), ("user_id", pa.int64())]
    + [(c, pa.string()) for c in SECTION_USER_COLUMNS[3:12]]
    + [("created_at", pa.timestamp("us", tz="UTC")), ("unknown_fields", pa.string())]
)


def write_export(out: Path, snapshot: str, truth: Truth, *, users: list[dict] | None = None) -> None:
    def dump(rows: list[dict]) -> list[dict]:
        return [{**r, "unknown_fields": None if r["unknown_fields"] is None else orjson.dumps(r["unknown_fields"])
                 .decode()} for r in rows]

    for table, schema, rows in (("sections", SECTION_SCHEMA, truth.sections),
                                ("section_users", USER_SCHEMA, truth.section_users if users is None else users)):
        folder = out / table / f"snapshot_id={snapshot}"
        folder.mkdir(parents=True)
        half = len(rows) // 2
        for i, part in enumerate((rows[:half], rows[half:])):
            pq.write_table(pa.Table.from_pylist(dump(part), schema=schema), folder / f"part-{i}.parquet")


def test_compare_identical_export_is_empty(tmp_path: Path) -> None:
    truth = ground_truth(f.build(), AccountScope("self"))
    write_export(tmp_path, "S1", truth)
    assert compare(tmp_path, "S1", truth) == []


def test_compare_reports_missing_extra_duplicated_and_different(tmp_path: Path) -> None:
    truth = ground_truth(f.build(), AccountScope("self"))
    users = [dict(r) for r in truth.section_users]
    dropped = users.pop(0)
    users.append(dict(users[0]))  # duplicate
    users.append({**users[1], "user_id": 42})  # extra
    users[2]["email"] = "changed@example.edu"
    users[3]["created_at"] = users[3]["created_at"].replace(second=1) if users[3]["created_at"].second != 1 else \
        users[3]["created_at"].replace(second=2)
    users[4]["unknown_fields"] = {"surprise": 1}
    write_export(tmp_path, "S2", truth, users=users)
    problems = compare(tmp_path, "S2", truth)
    text = "\n".join(problems)
    assert f"section_id={dropped['section_id']}, user_id={dropped['user_id']}: missing" in text
    assert f"section_id={users[0]['section_id']}, user_id={users[0]['user_id']}: duplicated (2 rows)" in text
    assert "user_id=42: extra" in text
    assert "email expected" in text and "created_at expected" in text and "unknown_fields expected" in text
    assert len(problems) == 6
    assert compare(tmp_path, "nothing-here", truth)[0].startswith("sections: no Parquet files")


def test_compare_accepts_string_ids_inside_unknown_fields(tmp_path: Path) -> None:
    truth = ground_truth(f.build(), AccountScope("self"))
    users = [{**r, "unknown_fields": {"sis_import_id": str(r["unknown_fields"]["sis_import_id"])}}
             if r["unknown_fields"] else r for r in truth.section_users]
    write_export(tmp_path, "S3", truth, users=users)
    assert compare(tmp_path, "S3", truth) == []


def test_truth_write(tmp_path: Path) -> None:
    truth = ground_truth(f.build(), AccountScope("self"))
    truth.write(tmp_path / "truth")
    lines = (tmp_path / "truth" / "section_users.jsonl").read_bytes().splitlines()
    assert len(lines) == len(truth.section_users)
    assert orjson.loads(lines[0])["user_id"] == truth.section_users[0]["user_id"]
    assert (tmp_path / "truth" / "sections.jsonl").exists()


def test_options_default_courses_drive_generation() -> None:
    assert SimOptions().courses == 100
