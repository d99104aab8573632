"""Whole crawls of the simulator, compared with the simulator's own ground truth."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import anyio
import orjson
import pytest

from exporter.canvas.errors import InvalidToken
from exporter.canvas.refs import account_ref, course_ref
from exporter.config import ClientConfig, CrawlConfig, RetryPolicy, Scope, Secret
from exporter.export import export
from exporter.sim import (
    ADMIN_TOKEN,
    NOSIS_TOKEN,
    AccountScope,
    BucketParams,
    CourseScope,
    Institution,
    SimOptions,
    Simulator,
    compare,
    ground_truth,
)

FAST_RETRY = RetryPolicy(base_delay=0.001, throttle_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def institution() -> Institution:
    return Institution.generate(seed=7, courses=14, large_sections=1, large_section_size=(450, 700))


def config(sim: Simulator, out: Path, scope: Scope, *, token: str = ADMIN_TOKEN, per_page: int = 100,
           concurrency: int = 16, **kw) -> CrawlConfig:
    client = ClientConfig(base_url=sim.base_url, token=Secret(token), per_page=per_page,
                          concurrency=concurrency, retry=FAST_RETRY)
    return CrawlConfig(client=client, scope=scope, out=str(out), **kw)


def manifest(out: Path, snapshot_id: str) -> dict:
    return orjson.loads((out / "_manifests" / f"{snapshot_id}.json").read_bytes())


@pytest.mark.parametrize("per_page", [100, 7])
async def test_whole_account_equals_ground_truth(institution, tmp_path, per_page):
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), per_page=per_page))
    truth = ground_truth(institution, AccountScope("self"))
    assert len(truth.section_users) > 1000 and len(truth.sections) > 30
    assert compare(tmp_path, result.snapshot_id, truth) == []
    m = manifest(tmp_path, result.snapshot_id)
    assert m["status"] == "complete" and m["failures"] == []
    assert m["tables"]["section_users"]["rows"] == len(truth.section_users)
    assert m["requests"]["requests"] == sim.stats.requests


async def test_course_refs_with_sis_ids_that_need_encoding(institution, tmp_path):
    courses = [c for c in institution.courses.values() if c.workflow_state != "deleted" and c.sis_course_id]
    awkward = [c for c in courses if any(ch in c.sis_course_id for ch in "/ %+é")] or courses
    refs = [f"sis_course_id:{c.sis_course_id}" for c in awkward[:4]] + [str(courses[-1].id)]
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(courses=tuple(course_ref(r) for r in refs))))
    truth = ground_truth(institution, CourseScope(refs))
    assert truth.sections
    assert compare(tmp_path, result.snapshot_id, truth) == []
    assert result.status == "complete"


async def test_token_without_sis_permission(institution, tmp_path):
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), token=NOSIS_TOKEN))
    truth = ground_truth(institution, AccountScope("self"), token=NOSIS_TOKEN)
    assert compare(tmp_path, result.snapshot_id, truth) == []
    assert all(r["sis_section_id"] is None for r in truth.sections)


@pytest.mark.parametrize("mode", ["403", "429"])
async def test_throttling_is_retried_and_loses_nothing(institution, tmp_path, mode):
    options = SimOptions(throttle=True, throttle_mode=mode, bucket=BucketParams(hwm=600, up_front_cost=50),
                         latency_ms=5, request_cost=4.0)
    async with Simulator(institution, options) as sim:
        # Another client of the same token has just filled the bucket to 45 below its mark: the first start
        # is refused whatever the pacer does, and the rest must wait for the leak.
        bucket = sim.bucket(ADMIN_TOKEN)
        bucket.count, bucket.last_touched = 555.0, options.clock()
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), concurrency=32))
    assert sim.stats.throttled > 0
    m = manifest(tmp_path, result.snapshot_id)
    assert m["requests"]["throttled"] == sim.stats.throttled
    assert m["requests"]["lowest_limit"] < 32
    assert compare(tmp_path, result.snapshot_id, ground_truth(institution, AccountScope("self"))) == []


@pytest.mark.parametrize("auth_error_updates,status", [(False, 401), (True, 403)])
async def test_refused_course_is_recorded_and_the_rest_exported(institution, tmp_path, auth_error_updates, status):
    victim = next(c.id for c in institution.account_courses(institution.root_account_id)
                  if institution.course_sections(c.id))
    options = SimOptions(forbidden_courses={victim}, auth_error_updates=auth_error_updates)
    async with Simulator(institution, options) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self"))))
        refusals = sim.stats.by_status[status]
    assert result.status == "partial"
    [failure] = manifest(tmp_path, result.snapshot_id)["failures"]
    assert failure["kind"] == "forbidden" and failure["status"] == status
    assert failure["item"] == f"course {victim}" and failure["path"].startswith(f"/api/v1/courses/{victim}/sections")
    assert refusals == 1  # not retried
    truth = ground_truth(institution, AccountScope("self"), forbidden_courses={victim})
    assert compare(tmp_path, result.snapshot_id, truth) == []


async def test_invalid_token_stops_the_run_and_commits_nothing(institution, tmp_path):
    async with Simulator(institution, SimOptions()) as sim:
        with pytest.raises(InvalidToken, match="Invalid access token"):
            await export(config(sim, tmp_path, Scope(account=account_ref("self")), token="nope"))
    assert not (tmp_path / "_manifests").exists()
    assert not (tmp_path / "sections").exists() and not (tmp_path / "section_users").exists()
    # nothing was made durable, so nothing is left for a later --resume to pick up by mistake
    assert not (tmp_path / "_staging").exists()


async def test_course_deleted_between_listing_and_fetching(tmp_path):
    inst = Institution.generate(seed=3, courses=6, large_sections=0)
    victim = inst.account_courses(inst.root_account_id)[2].id

    def delete_after_listing(request) -> None:
        # The first request after the account listing has been answered: the victim was listed, now it goes.
        if "/accounts/" not in request.path and inst.courses[victim].workflow_state != "deleted":
            inst.delete_course(victim)

    async with Simulator(inst, SimOptions()) as sim:
        sim.hooks.append(delete_after_listing)
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), concurrency=1))
    failures = manifest(tmp_path, result.snapshot_id)["failures"]
    assert [(f["kind"], f["item"], f["status"]) for f in failures] == [("not_found", f"course {victim}", 404)]
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


async def test_user_in_several_sections_and_roles_gives_one_row_per_section(institution, tmp_path):
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self"))))
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "section_users", partitioning="hive").to_table(columns=["section_id", "user_id"])
    pairs = list(zip(table["section_id"].to_pylist(), table["user_id"].to_pylist()))
    assert len(pairs) == len(set(pairs))
    # a user with two roles in one section, and a user in several sections, both present in the model
    by_pair: dict[tuple[int, int], set[str]] = {}
    for e in institution.enrollments.values():
        if e.workflow_state not in ("deleted", "rejected") and e.type != "StudentViewEnrollment":
            by_pair.setdefault((e.section_id, e.user_id), set()).add(e.type)
    multi_role = [p for p, types in by_pair.items() if len(types) > 1 and p in set(pairs)]
    assert multi_role, "the institution should have a user with two roles in one section"
    sections_per_user: dict[int, int] = {}
    for s, u in pairs:
        sections_per_user[u] = sections_per_user.get(u, 0) + 1
    assert max(sections_per_user.values()) > 1
    assert result.status == "complete"


async def test_interrupted_crawl_resumes_to_the_same_result(institution, tmp_path):
    async with Simulator(institution, SimOptions()) as sim:
        cfg = config(sim, tmp_path, Scope(account=account_ref("self")), snapshot_id="R1", concurrency=4)
        stop = anyio.Event()
        sim.hooks.append(lambda request: stop.set() if sim.stats.requests >= 40 else None)
        async with anyio.create_task_group() as tg:
            async def crawl() -> None:
                await export(cfg)

            tg.start_soon(crawl)
            await stop.wait()
            tg.cancel_scope.cancel()
        assert not (tmp_path / "_manifests" / "R1.json").exists()
        assert (tmp_path / "_staging" / "R1").exists()
        first_requests = sim.stats.requests
        resumed = CrawlConfig(client=cfg.client, scope=cfg.scope, out=cfg.out, snapshot_id=None, resume=True)
        result = await export(resumed)
    assert result.snapshot_id == "R1"
    assert compare(tmp_path, "R1", ground_truth(institution, AccountScope("self"))) == []
    m = manifest(tmp_path, "R1")
    assert m["resumed"] is True
    assert m["requests"]["requests"] < sim.stats.requests  # the resumed run did not redo everything
    assert first_requests >= 40
    assert not os.path.exists(tmp_path / "_staging" / "R1")


async def test_resume_with_other_options_is_refused_and_changes_nothing(institution, tmp_path):
    """A resumed run continues the run that started the snapshot: with another Canvas, scope or includes it
    would commit a snapshot that mixes two exports. It is refused, naming each difference, and the staged run
    (its options and start time) is left as it was, to be resumed with the right options."""
    from exporter.store.snapshot import SnapshotError

    async with Simulator(institution, SimOptions()) as sim, Simulator(institution, SimOptions()) as other:
        cfg = config(sim, tmp_path, Scope(account=account_ref("self")), snapshot_id="R2", concurrency=4)
        stop = anyio.Event()
        sim.hooks.append(lambda request: stop.set() if sim.stats.requests >= 40 else None)
        async with anyio.create_task_group() as tg:
            tg.start_soon(export, cfg)
            await stop.wait()
            tg.cancel_scope.cancel()
        run_json = tmp_path / "_staging" / "R2" / "run.json"
        staged = {p: p.read_bytes() for p in (tmp_path / "_staging" / "R2").rglob("*") if p.is_file()}
        resume = replace(cfg, resume=True)
        course = next(iter(institution.courses))
        attempts = {
            "--base-url was": replace(resume, client=replace(cfg.client, base_url=other.base_url)),
            "scope (--account, --course) was account=self, now courses=": replace(
                resume, scope=Scope(courses=(course_ref(str(course)),))),
            "--user-include was avatar_url, now none": replace(resume, user_includes=()),
        }
        for says, attempt in attempts.items():
            with pytest.raises(SnapshotError, match="started with other options") as refused:
                await export(attempt)
            assert says in str(refused.value)
            assert {p: p.read_bytes() for p in staged} == staged  # not a file touched, none deleted
        started_at = orjson.loads(run_json.read_bytes())["started_at"]
        # the same Canvas typed another way (a trailing slash) is the same export
        resume = replace(resume, client=replace(cfg.client, base_url=cfg.client.base_url + "/"))
        result = await export(resume)
    assert compare(tmp_path, "R2", ground_truth(institution, AccountScope("self"))) == []
    assert manifest(tmp_path, "R2")["started_at"] == started_at and result.status == "complete"


async def test_resumed_counts_include_rosters_made_durable_before_their_course(institution, tmp_path):
    """Each table's files close on their own, so a run can stop with a roster durable and its course's
    section list not: the resume lists the course again, does not fetch that roster again, and counts it."""
    from datetime import datetime, timezone

    import pyarrow.dataset as ds

    from exporter.export import run_info
    from exporter.rows import SECTION_USERS, TABLES
    from exporter.store.snapshot import Snapshot

    async with Simulator(institution, SimOptions()) as sim:
        cfg = config(sim, tmp_path / "staged", Scope(account=account_ref("self")), snapshot_id="S")
        first = await export(config(sim, tmp_path / "first", Scope(account=account_ref("self"))))
        users = ds.dataset(tmp_path / "first" / "section_users", partitioning="hive").to_table()
        section = users.column("section_id")[0].as_py()
        rows = users.filter(ds.field("section_id") == section).select(SECTION_USERS.schema.names)
        staged = Snapshot(cfg.out, "S", TABLES)
        staged.open(run_info(cfg, "S", datetime.now(timezone.utc)), resume=False)
        staged.add(SECTION_USERS, section, rows.cast(SECTION_USERS.schema).to_batches())
        staged.close_parts()  # the roster is journaled; no course is
        asked: list[str] = []
        sim.hooks.append(lambda request: asked.append(request.path))
        result = await export(replace(cfg, resume=True))
    assert first.status == result.status == "complete"
    assert f"/api/v1/sections/{section}/users" not in asked
    truth = ground_truth(institution, AccountScope("self"))
    assert compare(tmp_path / "staged", "S", truth) == []
    m = manifest(tmp_path / "staged", "S")
    assert m["sections"] == {"found": len(truth.sections), "done": len(truth.sections)}


@pytest.mark.parametrize("includes", [
    ("total_students", "passback_status", "permissions"),
    ("students", "avatar_url", "enrollments"),
    (),
])
async def test_section_includes_are_kept_typed_or_in_unknown_fields(institution, tmp_path, includes):
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), section_includes=includes))
    truth = ground_truth(institution, AccountScope("self"), section_includes=includes)
    assert compare(tmp_path, result.snapshot_id, truth) == []
    import pyarrow.dataset as ds

    rows = ds.dataset(tmp_path / "sections", partitioning="hive").to_table().to_pylist()
    extras = [orjson.loads(r["unknown_fields"]) for r in rows if r["unknown_fields"]]
    for name in set(includes) - {"total_students", "avatar_url", "enrollments"}:
        assert any(name in e for e in extras), f"{name} was asked for and is not kept"
    if "total_students" in includes:
        assert any(r["total_students"] for r in rows)
    else:
        assert all(r["total_students"] is None for r in rows)



@pytest.mark.parametrize("recheck", [True, False])
async def test_section_moved_into_a_course_listed_already_is_found_by_the_recheck(tmp_path, recheck):
    inst = Institution.generate(seed=3, courses=6, large_sections=0)
    courses = [c.id for c in inst.account_courses(inst.root_account_id)]
    listed_first, listed_last = courses[0], courses[-1]
    mover = inst.course_sections(listed_last)[0].id
    asked: set[str] = set()

    def move_once_the_target_was_listed(request) -> None:
        # Just before the last course's sections are listed, a section of it is cross-listed into the first
        # course, whose list was answered already: neither first listing shows it.
        asked.add(request.path)
        if (request.path == f"/api/v1/courses/{listed_last}/sections"
                and f"/api/v1/courses/{listed_first}/sections" in asked
                and inst.sections[mover].course_id == listed_last):
            inst.crosslist_section(mover, listed_first)

    async with Simulator(inst, SimOptions()) as sim:
        sim.hooks.append(move_once_the_target_was_listed)
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), concurrency=1,
                                     recheck=recheck))
    assert inst.sections[mover].course_id == listed_first, "the section was not moved"
    differences = compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self")))
    if recheck:
        assert differences == []
    else:  # what --no-recheck gives up (README, "When Canvas changes during the crawl")
        assert differences and all(str(mover) in d for d in differences), differences



async def test_a_page_emptied_by_dropping_a_test_student_does_not_end_the_roster(tmp_path):
    """Canvas drops test students from a users page after cutting it, so with one user per page the test
    student's page comes back `[]` with a next link, like a page past the end. The roster goes on after it."""
    inst = Institution.generate(seed=5, courses=6, large_sections=0)
    rosters = {s: [e.user for e in inst.section_roster(s)] for s in inst.sections}
    inside = [s for s, users in rosters.items()  # a test student with users after it, in the users list's order
              if any(u.fake_student for u in users[:-1])]
    assert inside, "the institution should have a test student inside a roster"
    async with Simulator(inst, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), per_page=1))
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []
    assert manifest(tmp_path, result.snapshot_id)["status"] == "complete"


async def test_two_test_students_in_one_section_do_not_end_its_roster(tmp_path):
    """A section cross-listed from another course can bring that course's test student along: with one user a
    page, two empty pages in a row, and the roster goes on after them."""
    inst = Institution.generate(seed=5, courses=6, large_sections=0)
    section = next(s for s in inst.sections if any(e.user.fake_student for e in inst.section_roster(s)[:-1]))
    inst.enroll(inst.add_user("Test Student", "Student, Test", fake_student=True).id, section,
                type="StudentViewEnrollment")
    async with Simulator(inst, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), per_page=1))
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


async def test_a_roster_is_journaled_only_after_its_sections_row(institution, tmp_path, monkeypatch):
    """A resume skips a journaled roster. Were its section's row not journaled too, a section cross-listed or
    deleted before the resume would leave roster rows naming a course the section no longer has, or none at
    all. Here rosters part files close every 200 rows, while the sections file would stay open to the end
    (fewer rows than that, no checkpoint): every rosters file must still follow the sections rows it needs."""
    from exporter.store import snapshot as snapshot_module

    journaled: list[dict] = []
    write_json = snapshot_module._write_json
    post_init = snapshot_module.Snapshot.__post_init__

    def recording(fs, path, data):
        if "/journal/" in path:
            journaled.append(data)
        return write_json(fs, path, data)

    def small_files(self):
        post_init(self)
        self.row_group_rows, self.file_rows = 100, 200

    monkeypatch.setattr(snapshot_module, "_write_json", recording)
    monkeypatch.setattr(snapshot_module.Snapshot, "__post_init__", small_files)
    async with Simulator(institution, SimOptions()) as sim:
        result = await export(config(sim, tmp_path, Scope(account=account_ref("self")), per_page=10,
                                     concurrency=4, checkpoint_seconds=3600.0))
    assert result.status == "complete"
    rows: set[int] = set()
    roster_files = 0
    for entry in journaled:
        if entry["table"] == "sections":
            rows.update(s[0] for unit in entry["units"] for s in unit["sections"])
        else:
            roster_files += 1
            assert {int(unit) for unit in entry["units"]} <= rows
    assert roster_files >= 5  # file after file, the order was put to the test


def test_resume_without_an_id_takes_the_snapshot_started_last(tmp_path):
    """By when its run began (run.json), not by name: `weekly` sorts after `20261204T231700Z`, and `-10`
    before `-2`. A staging folder without a readable run.json counts as the oldest."""
    from exporter.export import latest_staged

    def staged(name: str, started_at: str | None) -> None:
        (tmp_path / "_staging" / name).mkdir(parents=True)
        if started_at is not None:
            (tmp_path / "_staging" / name / "run.json").write_bytes(orjson.dumps({"started_at": started_at}))

    staged("weekly", "2026-11-27T02:00:00Z")
    staged("zzz-broken", None)
    staged("20261204T231700Z-2", "2026-12-04T23:17:00Z")
    staged("20261204T231700Z-10", "2026-12-04T23:17:01Z")
    assert latest_staged(str(tmp_path)) == "20261204T231700Z-10"
    assert latest_staged(str(tmp_path / "nothing-here")) is None
