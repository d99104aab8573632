"""The generated institution: determinism, size, the awkward data it must contain, and mutations."""

from __future__ import annotations

from collections import Counter

import pytest

from exporter.sim import Institution
from exporter.sim.collation import collation_key
from exporter.sim.institution import ENROLLMENT_STATES, ENROLLMENT_TYPES


@pytest.fixture(scope="module")
def default() -> Institution:
    return Institution.generate()


def test_deterministic_for_a_seed() -> None:
    a, b, c = (Institution.generate(seed=s, courses=20) for s in (5, 5, 6))
    assert a.counts() == b.counts()
    assert [(s.id, s.name, s.sis_section_id) for s in a.sections.values()] == \
        [(s.id, s.name, s.sis_section_id) for s in b.sections.values()]
    assert [u.name for u in a.users.values()] == [u.name for u in b.users.values()]
    assert [u.name for u in a.users.values()] != [u.name for u in c.users.values()]


def test_default_size(default: Institution) -> None:
    counts = default.counts()
    assert counts.courses == 100
    assert 250 <= counts.sections <= 400
    assert 15_000 <= counts.section_users <= 30_000
    sizes = sorted((len(default.section_roster(s)) for s in default.sections), reverse=True)
    assert all(2000 <= n <= 4000 for n in sizes[:2]) and sizes[2] < 2000


def test_rows_scale_linearly() -> None:
    small = Institution.generate(seed=2, courses=50).counts().section_users
    large = Institution.generate(seed=2, courses=200).counts().section_users
    assert 3.3 < large / small < 4.7


def test_ids_need_int64_and_some_break_doubles(default: Institution) -> None:
    ids = [*default.courses, *default.sections, *default.users, *default.enrollments]
    assert min(ids) >= 10**13 and max(ids) < 2**63
    assert sum(1 for i in ids if i > 2**53 and float(i) != i) >= 5  # a double cannot hold them
    assert any(len(str(i)) == 19 for i in default.users)


def test_awkward_data_is_present(default: Institution) -> None:
    courses = list(default.courses.values())
    assert Counter(c.workflow_state for c in courses).keys() == {"created", "claimed", "available", "completed",
                                                                  "deleted"}
    sis = {c.sis_course_id for c in courses}
    assert {"MATH-101/F26", "HIST 200 Fall 2026", "PCT%100-A", "C++ 201+LAB", "0042", "ÉCON 101/É26"} <= sis
    assert None in sis
    sections = list(default.sections.values())
    assert any(s.nonxlist_course_id is not None for s in sections)
    assert any(s.workflow_state == "deleted" for s in sections)
    assert any(s.sis_section_id and s.sis_section_id.startswith("0") for s in sections)
    assert any(s.sis_section_id is None for s in sections) and any(s.start_at is None for s in sections)
    assert any(not s.name.isascii() for s in sections)
    users = list(default.users.values())
    assert any(u.sis_user_id is None for u in users) and any((u.sis_user_id or "").startswith("00") for u in users)
    assert any(u.pronouns for u in users) and any(u.pronouns is None for u in users)
    assert any(u.fake_student for u in users)
    enrollments = list(default.enrollments.values())
    assert {e.type for e in enrollments} == set(ENROLLMENT_TYPES)
    assert {e.workflow_state for e in enrollments} == set(ENROLLMENT_STATES)
    pairs = Counter((e.user_id, e.section_id) for e in enrollments)
    assert any(n > 1 for n in pairs.values())  # same user twice in one section
    per_user = Counter(e.user_id for e in enrollments)
    assert sum(1 for n in per_user.values() if n >= 3) > 100  # users in several sections
    assert all(isinstance(u.created_at, int) for u in users)  # whole seconds


def test_collation_is_case_and_accent_insensitive_first() -> None:
    names = ["zeta", "Élan", "elan", "Alpha", "élan", "Ødegård", "Oz", "beta"]
    # accents and case only break ties; lowercase first, as ICU does
    assert sorted(names, key=collation_key) == ["Alpha", "beta", "elan", "élan", "Élan", "Ødegård", "Oz", "zeta"]


def test_mutations_refresh_views() -> None:
    inst = Institution.generate(seed=4, courses=10)
    course = next(c for c in inst.courses.values() if c.workflow_state == "available" and inst.course_sections(c.id))
    section = inst.course_sections(course.id)[0]
    other = next(c for c in inst.courses.values() if c.id != course.id)
    user = next(iter(inst.users.values()))
    inst.enroll(user.id, section.id)
    assert user.id in {r.user.id for r in inst.section_roster(section.id)}
    assert inst.unenroll(user.id, section.id) >= 1
    assert user.id not in {r.user.id for r in inst.section_roster(section.id)}
    inst.crosslist_section(section.id, other.id)
    assert section in inst.course_sections(other.id) and section not in inst.course_sections(course.id)
    assert section.nonxlist_course_id == course.id
    assert all(e.course_id == other.id for e in inst.enrollments_in_section(section.id))
    inst.delete_section(section.id)
    assert section not in inst.course_sections(other.id) and inst.section_roster(section.id) == []
    inst.delete_course(course.id)
    assert course not in inst.account_courses(inst.root_account_id)
    newcomer = inst.add_user("Ada Lovelace")
    assert newcomer.sortable_name == "Lovelace, Ada"


def test_section_mutations_keep_indexes_and_views() -> None:
    from . import factory as f

    inst = f.build()
    made = inst.create_section(f.MATH, "Lab C", created_at=1, sis_section_id="C-1", integration_id="c-int")
    assert made in inst.course_sections(f.MATH)
    assert inst.lookup_sis("section", "sis", "C-1") == made.id == f.S_DRAFT + 1  # next id on shard 1
    inst.update_section(made.id, sis_section_id="C-2", name="Aardvark")
    assert inst.lookup_sis("section", "sis", "C-1") is None and inst.lookup_sis("section", "sis", "C-2") == made.id
    assert inst.lookup_sis("section", "integration", "c-int") == made.id  # untouched
    assert inst.course_sections(f.MATH)[0] is made  # re-sorted by the new name
    inst.delete_section(made.id)
    assert made not in inst.course_sections(f.MATH)
    assert inst.lookup_sis("section", "sis", "C-2") == made.id  # a deleted section keeps its SIS id
    inst.update_section(made.id, workflow_state="active")
    assert made in inst.course_sections(f.MATH)
    with pytest.raises(TypeError):
        inst.update_section(made.id, course_id=f.ODD)  # moving is cross-listing's job
    with pytest.raises(ValueError):
        inst.update_section(made.id, workflow_state="deleted")  # deleting is delete_section's


def test_crosslisting_rules() -> None:
    from . import factory as f

    inst = f.build()
    section = inst.sections[f.S_ODD]
    inst.crosslist_section(f.S_ODD, f.ODD)  # already there: nothing happens
    assert section.nonxlist_course_id is None
    inst.crosslist_section(f.S_ODD, f.DRAFT)
    inst.crosslist_section(f.S_ODD, f.MATH)
    assert (section.course_id, section.nonxlist_course_id) == (f.MATH, f.ODD)  # the first course is kept
    inst.crosslist_section(f.S_ODD, f.ODD)
    assert (section.course_id, section.nonxlist_course_id) == (f.ODD, f.ODD)  # as crosslist_to_course leaves it
    inst.uncrosslist_section(f.S_ODD)
    assert (section.course_id, section.nonxlist_course_id) == (f.ODD, None)
    inst.delete_course(f.ODD)
    inst.uncrosslist_section(f.S_XLIST)
    assert inst.courses[f.ODD].workflow_state == "claimed"  # un-cross-listing revives the original course
    assert inst.course_sections(f.ODD) == [inst.sections[f.S_XLIST], section]


def test_deletable_and_snapshots_of_enrollments() -> None:
    from . import factory as f

    inst = f.build()
    assert not inst.section_deletable(f.S_LAB_A) and inst.section_deletable(f.S_LAB_B)
    held = inst.enrollments_in_section(f.S_LAB_B)
    inst.enroll(f.U_ZOE, f.S_LAB_B, state="rejected")
    inst.enroll(f.U_TEST, f.S_LAB_B, "StudentViewEnrollment")
    assert held == () and len(inst.enrollments_in_section(f.S_LAB_B)) == 2  # a copy, not the live list
    assert inst.section_deletable(f.S_LAB_B)
    inst.enroll(f.U_ZOE, f.S_LAB_B, state="completed")
    assert not inst.section_deletable(f.S_LAB_B)


def test_a_renamed_user_moves_in_the_roster_after_reindex() -> None:
    from . import factory as f

    inst = f.build()
    assert [r.user.id for r in inst.section_roster(f.S_XLIST)] == [f.U_AGREN, f.U_ZOE]
    inst.users[f.U_ZOE].sortable_name = "Aaa, Zoë"
    inst.reindex()
    assert [r.user.id for r in inst.section_roster(f.S_XLIST)] == [f.U_ZOE, f.U_AGREN]


def test_a_renamed_user_moves_in_the_roster_after_touch() -> None:
    inst = Institution.generate(seed=2, courses=10)
    section_id = max(inst.sections, key=lambda s: len(inst.section_roster(s)))
    order = [e.user.id for e in inst.section_roster(section_id)]
    first = inst.users[order[0]]
    first.sortable_name = "zzzz, last now"
    inst.touch()
    now = [e.user.id for e in inst.section_roster(section_id)]
    assert now != order and now.index(first.id) > 0
    assert now == sorted(order, key=lambda u: (collation_key(inst.users[u].sortable_name), u))
