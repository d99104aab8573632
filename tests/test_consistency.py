"""Canvas changes while we crawl: sections are created, edited, cross-listed, un-cross-listed and deleted, and
users move between sections. The snapshot keeps the guarantee the README documents:

- every sections row, and every section_users row apart from its course_id, was true at some moment during
  the crawl (it equals a row of the ground truth of one of the states the institution went through);
- a section_users row's course_id is the course its section is listed under in the same snapshot;
- no section appears twice, no (section, user) pair appears twice;
- a section deleted after it was listed keeps its row, and its roster is recorded as a not_found failure;
- a section cross-listed (or un-cross-listed) once during the crawl is in the snapshot, under its old course
  or its new one; a section that existed from start to end is in the snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pyarrow.dataset as ds
import pytest

from exporter.canvas.refs import account_ref
from exporter.config import ClientConfig, CrawlConfig, RetryPolicy, Scope, Secret
from exporter.export import export
from exporter.sim import ADMIN_TOKEN, AccountScope, Institution, SimOptions, Simulator, ground_truth

UNKNOWN = "unknown_fields"


def freeze(row: dict, drop: tuple[str, ...] = ()) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items() if k not in drop and k != UNKNOWN))


class History:
    """Every row that was true in some state of the institution, and the moves made."""

    def __init__(self, inst: Institution) -> None:
        self.inst = inst
        self.sections: set[tuple] = set()
        self.users: set[tuple] = set()
        self.moved: dict[int, set[int]] = {}  # section id -> the courses it was in around its move
        self.deleted: set[int] = set()
        self.record()
        self.at_start = {r["id"] for r in ground_truth(inst, AccountScope("self")).sections}

    def record(self) -> None:
        truth = ground_truth(self.inst, AccountScope("self"))
        self.sections |= {freeze(r) for r in truth.sections}
        self.users |= {freeze(r, drop=("course_id",)) for r in truth.section_users}


def mutations(inst: Institution, history: History, rng: random.Random) -> list[Callable[[], None]]:
    """A shuffled plan of changes. A section is moved at most once and never deleted after a move."""
    root = inst.root_account_id
    courses = [c.id for c in inst.account_courses(root)]
    sections = [s.id for c in courses for s in inst.course_sections(c)]
    rng.shuffle(sections)
    users = list(inst.users)
    touched: set[int] = set()

    def pick() -> int | None:
        free = [s for s in sections if s not in touched and inst.sections[s].workflow_state == "active"]
        if not free:
            return None
        touched.add(free[0])
        return free[0]

    def create() -> None:
        course = rng.choice(courses)
        section = inst.create_section(course, f"Nouvelle section {rng.randrange(10**6)}", created_at=1_767_225_600)
        sections.append(section.id)

    def edit() -> None:
        s = pick()
        if s is not None:
            inst.update_section(s, name=f"Renamed Ωmega {rng.randrange(1000)}")

    def crosslist() -> None:
        s = pick()
        if s is not None:
            old = inst.sections[s].course_id
            new = rng.choice([c for c in courses if c != old])
            inst.crosslist_section(s, new)
            history.moved[s] = {old, new}

    def uncrosslist() -> None:
        candidates = [s for s in sections if s not in touched and inst.sections[s].nonxlist_course_id
                      and inst.sections[s].workflow_state == "active"
                      and inst.sections[s].nonxlist_course_id in courses]
        if candidates:
            s = candidates[0]
            touched.add(s)
            old = inst.sections[s].course_id
            inst.uncrosslist_section(s)
            history.moved[s] = {old, inst.sections[s].course_id}

    def delete() -> None:
        s = pick()
        if s is not None:
            inst.delete_section(s)
            history.deleted.add(s)

    def move_user() -> None:
        a, b = rng.sample([s for s in sections if inst.sections[s].workflow_state == "active"], 2)
        roster = inst.section_roster(a)
        if roster:
            user = roster[0].user.id
            inst.unenroll(user, a)
            inst.enroll(user, b)
        else:
            inst.enroll(rng.choice(users), b)

    plan = [create, edit, crosslist, uncrosslist, delete, move_user] * 5
    rng.shuffle(plan)
    return plan


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_changes_during_a_crawl_keep_the_guarantee(tmp_path, seed):
    inst = Institution.generate(seed=seed, courses=12, large_sections=1, large_section_size=(300, 400),
                                crosslist_rate=0.2)
    rng = random.Random(seed)
    history = History(inst)
    plan = mutations(inst, history, rng)

    async with Simulator(inst, SimOptions(latency_ms=1)) as sim:
        def change(_request) -> None:  # noqa: ANN001
            n = sim.stats.requests
            if n >= 3 and n % 3 == 0 and plan:
                plan.pop()()
                history.record()

        sim.hooks.append(change)
        client = ClientConfig(base_url=sim.base_url, token=Secret(ADMIN_TOKEN), per_page=10, concurrency=6,
                              retry=RetryPolicy(base_delay=0.001, throttle_delay=0.01, max_delay=0.05))
        result = await export(CrawlConfig(client=client, scope=Scope(account=account_ref("self")),
                                          out=str(tmp_path)))
    assert not plan, "the crawl ended before every change was made; make the crawl longer"
    # A section deleted after it was listed has no roster to fetch: that, and only that, is recorded.
    for failure in result.manifest["failures"]:
        assert failure["kind"] == "not_found" and failure["item"].startswith("section "), failure
        assert int(failure["item"].split()[1]) in history.deleted, failure

    sections = ds.dataset(tmp_path / "sections", partitioning="hive").to_table().to_pylist()
    users = ds.dataset(tmp_path / "section_users", partitioning="hive").to_table().to_pylist()
    for r in sections + users:
        del r["snapshot_id"]
    by_id = {r["id"]: r for r in sections}
    assert len(by_id) == len(sections), "a section appears twice"
    pairs = [(r["section_id"], r["user_id"]) for r in users]
    assert len(set(pairs)) == len(pairs), "a (section, user) pair appears twice"
    for r in sections:
        assert freeze(r) in history.sections, f"section row never true: {r}"
    for r in users:
        assert freeze(r, drop=("course_id",)) in history.users, f"user row never true: {r}"
        assert r["section_id"] in by_id and r["course_id"] == by_id[r["section_id"]]["course_id"]
    assert history.moved, "the plan should have moved sections"
    for s, courses in history.moved.items():
        assert s in by_id, f"section {s} moved during the crawl and was lost"
        assert by_id[s]["course_id"] in courses
    final = {r["id"] for r in ground_truth(inst, AccountScope("self")).sections}
    assert (history.at_start & final) <= by_id.keys(), "a section present from start to end is missing"
