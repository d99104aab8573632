"""A seeded synthetic institution: accounts, terms, courses, sections, users and enrollments.

The model holds plain facts (what Canvas stores); what an endpoint returns is derived from it by the views
below (`course_sections`, `section_roster`, ...), which are cached and dropped wholesale whenever the model
changes. Tests that edit a dataclass field directly must call `Institution.touch()` afterwards (or
`reindex()` when they changed an id, a SIS id, a parent, a course_id, a sortable name or added objects).

Mutations are plain synchronous methods. The server is one asyncio thread and builds each response without
awaiting in between, so a mutation (from a hook, a test, or a write request) lands between two responses,
never inside one: every response is a consistent snapshot. Call them from the event loop's thread.

Ids follow Canvas's sharding scheme (`shard * 10**13 + local id`): most live on shard 1, a few on shard 901
(above 2**53, odd, so a JSON reader that parses numbers as doubles corrupts them) and a handful on shard
920000 (19 digits, near the int64 limit). Timestamps are whole UTC seconds since the epoch.
"""

from __future__ import annotations

import gc
import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from exporter.sim.collation import collation_key

SHARD = 10**13
HIGH_SHARD = 901  # ids 9.01e15 + odd local id: above 2**53
HUGE_SHARD = 920_000  # ids 9.2e18 + local id: 19 digits

COURSE_STATES = ("created", "claimed", "available", "completed", "deleted")
DEFAULT_COURSE_STATES = frozenset({"created", "claimed", "available", "completed"})
ENROLLMENT_TYPES = (
    "StudentEnrollment",
    "TeacherEnrollment",
    "TaEnrollment",
    "ObserverEnrollment",
    "DesignerEnrollment",
    "StudentViewEnrollment",
)
ENROLLMENT_STATES = ("active", "invited", "creation_pending", "completed", "inactive", "rejected", "deleted")
# Enrollments whose user is listed with no pseudonym / personal info when they are all a user has.
PENDING_STATES = frozenset({"invited", "creation_pending", "rejected"})
# CourseSection#students: StudentEnrollments not deleted, completed, rejected or inactive.
COUNTED_STUDENT_STATES = frozenset({"active", "invited", "creation_pending"})
ROLE_IDS = {
    "StudentEnrollment": 3,
    "TeacherEnrollment": 4,
    "TaEnrollment": 5,
    "DesignerEnrollment": 6,
    "ObserverEnrollment": 7,
    "StudentViewEnrollment": 3,
}
HOST = "canvas.example.edu"
SECTION_EDITABLE_FIELDS = frozenset({"name", "sis_section_id", "integration_id", "start_at", "end_at",
                                     "restrict_enrollments_to_section_dates", "workflow_state"})


@dataclass(slots=True)
class Account:
    id: int
    name: str
    parent_account_id: int | None
    sis_account_id: str | None
    integration_id: str | None = None
    workflow_state: str = "active"


@dataclass(slots=True)
class Term:
    id: int
    name: str
    sis_term_id: str | None
    start_at: int | None
    end_at: int | None


@dataclass(slots=True)
class Course:
    id: int
    name: str
    course_code: str
    account_id: int
    term_id: int
    sis_course_id: str | None
    integration_id: str | None
    sis_import_id: int | None
    workflow_state: str
    created_at: int
    start_at: int | None
    end_at: int | None
    uuid: str
    is_public: bool = False


@dataclass(slots=True)
class Section:
    id: int
    course_id: int
    nonxlist_course_id: int | None
    name: str
    sis_section_id: str | None
    integration_id: str | None
    sis_import_id: int | None
    start_at: int | None
    end_at: int | None
    restrict_enrollments_to_section_dates: bool | None  # None: never set (a section created without it)
    created_at: int
    workflow_state: str = "active"


@dataclass(slots=True)
class User:
    id: int
    name: str
    sortable_name: str
    short_name: str
    sis_user_id: str | None
    integration_id: str | None
    sis_import_id: int | None
    login_id: str | None  # None: no pseudonym (test students)
    email: str | None
    pronouns: str | None
    avatar_url: str
    created_at: int
    fake_student: bool = False


@dataclass(slots=True)
class Enrollment:
    id: int
    user_id: int
    section_id: int
    course_id: int
    type: str
    workflow_state: str
    created_at: int
    updated_at: int
    associated_user_id: int | None = None
    limit_privileges_to_course_section: bool = False


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One user as `/sections/:id/users` lists them: their visible enrollments in the section."""

    user: User
    enrollments: tuple[Enrollment, ...]  # not deleted, not rejected
    personal_hidden: bool  # every non-deleted enrollment is invited/creation_pending/rejected


@dataclass(frozen=True, slots=True)
class Counts:
    accounts: int
    courses: int
    sections: int
    users: int
    enrollments: int
    section_users: int  # distinct (section, user) pairs listed by /sections/:id/users over every section

    def __str__(self) -> str:
        return (
            f"{self.accounts} accounts, {self.courses} courses, {self.sections} sections, {self.users} users, "
            f"{self.enrollments} enrollments, {self.section_users} section-user pairs"
        )


def iso(ts: int | None) -> str | None:
    """Canvas's JSON timestamp: UTC, `Z`, whole seconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_datetime(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class Institution:
    """The model plus cached views. Mutate it through the methods so the views are refreshed."""

    def __init__(
        self,
        *,
        root_account_id: int,
        accounts: Iterable[Account],
        terms: Iterable[Term],
        courses: Iterable[Course],
        sections: Iterable[Section],
        users: Iterable[User],
        enrollments: Iterable[Enrollment],
        seed: int | None = None,
    ) -> None:
        self.seed = seed
        self.root_account_id = root_account_id
        self.accounts = {a.id: a for a in accounts}
        self.terms = {t.id: t for t in terms}
        self.courses = {c.id: c for c in courses}
        self.sections = {s.id: s for s in sections}
        self.users = {u.id: u for u in users}
        self.enrollments = {e.id: e for e in enrollments}
        self.version = 0
        self._views: dict[tuple, object] = {}
        self.reindex()

    # ----- indexes (facts that only change through the mutation methods) -----

    def reindex(self) -> None:
        """Rebuild every index (SIS ids, parents, memberships); after editing such fields by hand."""
        self._children: dict[int, list[int]] = {}
        for a in self.accounts.values():
            if a.parent_account_id is not None:
                self._children.setdefault(a.parent_account_id, []).append(a.id)
        self._courses_by_account: dict[int, list[Course]] = {}
        for c in self.courses.values():
            self._courses_by_account.setdefault(c.account_id, []).append(c)
        self._sections_by_course: dict[int, list[Section]] = {}
        for s in self.sections.values():
            self._sections_by_course.setdefault(s.course_id, []).append(s)
        self._enrollments_by_section: dict[int, list[Enrollment]] = {}
        for e in self.enrollments.values():
            self._enrollments_by_section.setdefault(e.section_id, []).append(e)
        self._sis: dict[tuple[str, str], int] = {}
        for a in self.accounts.values():
            self._index_sis("account", a.sis_account_id, a.integration_id, a.id)
        for c in self.courses.values():
            self._index_sis("course", c.sis_course_id, c.integration_id, c.id)
        for s in self.sections.values():
            self._index_sis("section", s.sis_section_id, s.integration_id, s.id)
        self.touch()

    def _index_sis(self, kind: str, sis_id: str | None, integration_id: str | None, id_: int) -> None:
        if sis_id is not None:
            self._sis[(f"{kind}:sis", sis_id)] = id_
        if integration_id is not None:
            self._sis[(f"{kind}:integration", integration_id)] = id_

    def touch(self) -> None:
        """Forget every cached view; call after changing model fields by hand."""
        self.version += 1
        self._views.clear()

    # ----- lookups by reference -----

    def lookup_sis(self, kind: str, column: str, value: str) -> int | None:
        """kind: account/course/section; column: sis or integration."""
        return self._sis.get((f"{kind}:{column}", value))

    def enrollments_in_section(self, section_id: int) -> tuple[Enrollment, ...]:
        """Every enrollment of the section (any state), in creation order; a copy, safe to hold across mutations."""
        return tuple(self._enrollments_by_section.get(section_id, ()))

    def section_deletable(self, section_id: int) -> bool:
        """CourseSection#deletable?: no enrollment left but deleted or rejected ones and test students'."""
        return not any(e.workflow_state not in ("deleted", "rejected") and e.type != "StudentViewEnrollment"
                       for e in self._enrollments_by_section.get(section_id, ()))

    # ----- views (cached until the next mutation) -----

    def account_subtree(self, account_id: int) -> list[int]:
        key = ("subtree", account_id)
        found = self._views.get(key)
        if found is None:
            found, stack = [], [account_id]
            while stack:
                a = stack.pop()
                found.append(a)
                stack.extend(self._children.get(a, ()))
            self._views[key] = found
        return found  # type: ignore[return-value]

    def account_courses(self, account_id: int, states: frozenset[str] = DEFAULT_COURSE_STATES) -> list[Course]:
        """`associated_courses` of the account (sub-accounts included) in the given states, by id."""
        key = ("account_courses", account_id, states)
        found = self._views.get(key)
        if found is None:
            found = sorted(
                (c for a in self.account_subtree(account_id) for c in self._courses_by_account.get(a, ())
                 if c.workflow_state in states),
                key=lambda c: c.id,
            )
            self._views[key] = found
        return found  # type: ignore[return-value]

    def course_sections(self, course_id: int) -> list[Section]:
        """`active_course_sections` ordered by the name collation key, then id."""
        key = ("course_sections", course_id)
        found = self._views.get(key)
        if found is None:
            found = sorted(
                (s for s in self._sections_by_course.get(course_id, ()) if s.workflow_state == "active"),
                key=lambda s: (collation_key(s.name), s.id),
            )
            self._views[key] = found
        return found  # type: ignore[return-value]

    def section_roster(self, section_id: int) -> list[RosterEntry]:
        """Users with a non-deleted, non-rejected enrollment in the section, by sortable name then id."""
        key = ("roster", section_id)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = self._build_roster(section_id)
        return found  # type: ignore[return-value]

    def _build_roster(self, section_id: int) -> list[RosterEntry]:
        by_user: dict[int, list[Enrollment]] = {}
        for e in self._enrollments_by_section.get(section_id, ()):
            if e.workflow_state != "deleted":
                same = by_user.get(e.user_id)
                if same is None:
                    by_user[e.user_id] = [e]
                else:
                    same.append(e)
        users = self.users
        keyed: list[tuple[tuple, RosterEntry]] = []
        for user_id, enrollments in by_user.items():
            if len(enrollments) == 1:  # most users: one enrollment, no generator needed
                state = enrollments[0].workflow_state
                if state == "rejected":
                    continue
                visible, hidden = tuple(enrollments), state in PENDING_STATES
            else:
                visible = tuple(e for e in enrollments if e.workflow_state != "rejected")
                if not visible:
                    continue
                hidden = all(e.workflow_state in PENDING_STATES for e in enrollments)
            user = users[user_id]
            # collation_key is memoized by text, so a renamed user sorts by the new name
            keyed.append(((collation_key(user.sortable_name), user.id), RosterEntry(user, visible, hidden)))
        keyed.sort(key=_first)  # the keys are unique (user ids), so entries are never compared
        return [entry for _, entry in keyed]

    def total_students(self, section_id: int) -> int:
        key = ("total_students", section_id)
        found = self._views.get(key)
        if found is None:
            found = sum(
                1 for e in self._enrollments_by_section.get(section_id, ())
                if e.type == "StudentEnrollment" and e.workflow_state in COUNTED_STUDENT_STATES
                and not self.users[e.user_id].fake_student
            )
            self._views[key] = found
        return found  # type: ignore[return-value]

    def cached(self, key: tuple, build):  # noqa: ANN001, ANN201 - small helper for the server's own views
        found = self._views.get(key)
        if found is None:
            found = build()
            self._views[key] = found
        return found

    def counts(self) -> Counts:
        return Counts(
            accounts=len(self.accounts),
            courses=len(self.courses),
            sections=len(self.sections),
            users=len(self.users),
            enrollments=len(self.enrollments),
            section_users=sum(len(self.section_roster(s)) for s in self.sections),
        )

    # ----- mutations (tests call these while a server runs) -----

    def delete_course(self, course_id: int) -> None:
        self.courses[course_id].workflow_state = "deleted"
        self.touch()

    def delete_section(self, section_id: int) -> None:
        """Soft-delete the section and destroy its enrollments, as CourseSection#destroy does."""
        self.sections[section_id].workflow_state = "deleted"
        for e in self._enrollments_by_section.get(section_id, ()):
            e.workflow_state = "deleted"
        self.touch()

    def crosslist_section(self, section_id: int, new_course_id: int) -> None:
        """crosslist_to_course: nothing if it is already there; else remember the original course once
        (`nonxlist_course_id ||= course_id`) and move section and enrollments. Cross-listing a section back
        into its original course keeps nonxlist_course_id (equal to course_id then), as Canvas does."""
        section = self.sections[section_id]
        if new_course_id not in self.courses:
            raise KeyError(new_course_id)
        if section.course_id == new_course_id:
            return
        if section.nonxlist_course_id is None:
            section.nonxlist_course_id = section.course_id
        self._move_section(section, new_course_id)
        self.touch()

    def uncrosslist_section(self, section_id: int) -> None:
        """CourseSection#uncrosslist: back to nonxlist_course_id, reviving that course (as "claimed") if it
        was deleted. Nothing if the section is not cross-listed."""
        section = self.sections[section_id]
        original_id = section.nonxlist_course_id
        if original_id is None:
            return
        original = self.courses[original_id]
        if original.workflow_state == "deleted":
            original.workflow_state = "claimed"
        section.nonxlist_course_id = None
        self._move_section(section, original_id)
        self.touch()

    def _move_section(self, section: Section, course_id: int) -> None:
        self._sections_by_course[section.course_id].remove(section)
        section.course_id = course_id
        self._sections_by_course.setdefault(course_id, []).append(section)
        for e in self._enrollments_by_section.get(section.id, ()):
            e.course_id = course_id

    def create_section(
        self,
        course_id: int,
        name: str,
        *,
        created_at: int,
        sis_section_id: str | None = None,
        integration_id: str | None = None,
        start_at: int | None = None,
        end_at: int | None = None,
        restrict_enrollments_to_section_dates: bool | None = None,
    ) -> Section:
        """A new active section on shard 1 (no SIS import). SIS ids are not checked for uniqueness here."""
        if course_id not in self.courses:
            raise KeyError(course_id)
        sid = max((s for s in self.sections if s < 2 * SHARD), default=SHARD) + 1
        section = Section(sid, course_id, None, name, sis_section_id, integration_id, None, start_at, end_at,
                          restrict_enrollments_to_section_dates, created_at)
        self.sections[sid] = section
        self._sections_by_course.setdefault(course_id, []).append(section)
        self._index_sis("section", sis_section_id, integration_id, sid)
        self.touch()
        return section

    def update_section(self, section_id: int, **changes: object) -> Section:
        """Set the given fields (SECTION_EDITABLE_FIELDS) and keep the SIS index in step. workflow_state may
        only become "active": that reactivates a deleted section, whose enrollments stay deleted (deleting
        is delete_section's job, moving crosslist_section's)."""
        unknown = changes.keys() - SECTION_EDITABLE_FIELDS
        if unknown:
            raise TypeError(f"not editable here: {', '.join(sorted(unknown))}")
        if changes.get("workflow_state", "active") != "active":
            raise ValueError("update_section only reactivates; use delete_section")
        section = self.sections[section_id]
        for column, field_name in (("sis", "sis_section_id"), ("integration", "integration_id")):
            if field_name in changes:
                old = getattr(section, field_name)
                if old is not None and self._sis.get((f"section:{column}", old)) == section_id:
                    del self._sis[(f"section:{column}", old)]
        for k, v in changes.items():
            setattr(section, k, v)
        self._index_sis("section", section.sis_section_id if "sis_section_id" in changes else None,
                        section.integration_id if "integration_id" in changes else None, section_id)
        self.touch()
        return section

    def enroll(
        self, user_id: int, section_id: int, type: str = "StudentEnrollment", state: str = "active"
    ) -> Enrollment:
        if type not in ENROLLMENT_TYPES or state not in ENROLLMENT_STATES:
            raise ValueError(f"bad enrollment type/state {type}/{state}")
        section = self.sections[section_id]
        if user_id not in self.users:
            raise KeyError(user_id)
        eid = max(self.enrollments, default=SHARD) + 1
        ts = TS_2026
        e = Enrollment(eid, user_id, section_id, section.course_id, type, state, ts, ts)
        self.enrollments[eid] = e
        self._enrollments_by_section.setdefault(section_id, []).append(e)
        self.touch()
        return e

    def unenroll(self, user_id: int, section_id: int) -> int:
        """Delete every enrollment of the user in the section; returns how many were deleted."""
        n = 0
        for e in self._enrollments_by_section.get(section_id, ()):
            if e.user_id == user_id and e.workflow_state != "deleted":
                e.workflow_state = "deleted"
                n += 1
        self.touch()
        return n

    def add_user(self, name: str, sortable_name: str | None = None, **fields: object) -> User:
        uid = max(u for u in self.users if u < HIGH_SHARD * SHARD) + 1
        first, _, last = name.rpartition(" ")
        user = User(
            id=uid, name=name, sortable_name=sortable_name or (f"{last}, {first}" if first else name),
            short_name=name, sis_user_id=None, integration_id=None, sis_import_id=None,
            login_id=f"user{uid}", email=None, pronouns=None,
            avatar_url=f"https://{HOST}/images/messages/avatar-50.png", created_at=1_767_225_600,
        )
        for k, v in fields.items():
            setattr(user, k, v)
        self.users[uid] = user
        self.touch()
        return user

    # ----- generation -----

    @classmethod
    def generate(
        cls,
        seed: int = 1,
        courses: int = 100,
        large_sections: int | None = None,
        *,
        large_section_size: tuple[int, int] = (2000, 4000),
        section_size: tuple[int, int, int] = (5, 150, 35),
        crosslist_rate: float = 0.03,
    ) -> Institution:
        """Deterministic for a seed. Rows scale linearly with `courses` (about 250 section-users per course).

        large_sections defaults to courses // 50 sections of 2,000-4,000 users each.
        section_size is (low, high, mode) of a triangular distribution of regular section sizes.
        """
        with gc_paused():
            return _Generator(seed, courses, large_sections, large_section_size, section_size, crosslist_rate).run()


@contextmanager
def gc_paused():  # noqa: ANN201
    """Bulk creation of acyclic objects: the cyclic GC would rescan a growing heap again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _first(pair: tuple) -> object:
    return pair[0]


# ---------------------------------------------------------------------------------------------------------
# Generation. Everything below draws from one random.Random(seed) in a fixed order.

FIRST = (
    "Ann", "José", "Zoë", "Łukasz", "Øyvind", "Søren", "Amélie", "Björn", "Chloé", "Dmitri", "Émile", "Fatima",
    "Günter", "Hana", "Ines", "Jürgen", "Kai", "Léa", "Mohammed", "Nuño", "Olúwaseun", "Priya", "Quentin",
    "Renée", "Siobhán", "Tomás", "Ulrike", "Valentina", "Wei", "Xóchitl", "Yusuf", "Zainab", "ann", "Ängel",
    "Ngọc", "Thảo", "Anaïs", "Čeněk", "Dženana", "Ewa", "Felix", "Grace", "Henry", "Isla", "Jack", "Kim",
    "Liam", "Maya", "Noah", "Olivia", "Pedro", "Rosa", "Sam", "Tara", "Uma", "Victor", "Will", "Yara",
)
LAST = (
    "Smith", "García", "Müller", "O'Brien", "de la Cruz", "van der Berg", "Ågren", "Østergaard", "Łęcki",
    "Nguyễn", "Ngô", "Zhang", "Öztürk", "Šimić", "Dvořák", "Ødegård", "Çelik", "Élise", "smith",
    "Mc Donald",
    "McDonald", "Abbott", "Baker", "Chen", "Davis", "Evans", "Fischer", "Gonzalez", "Hughes", "Ivanov",
    "Johnson", "Kowalski", "Lopez", "Martin", "Nakamura", "Olsen", "Patel", "Quinn", "Rossi", "Schmidt",
    "Taylor", "Ueda", "Vargas", "Wagner", "Xu", "Yamamoto", "Zimmermann", "Æbelø", "Þórsson", "王",
    "Иванова", "Παπαδόπουλος",
)
PRONOUNS = ("she/her", "he/him", "they/them", "elle/iel", "she/they")
SECTION_WORDS = (
    "Section", "section", "Lecture", "lab", "Lab", "Laboratoire", "Übung", "Élan", "élan", "Zoë's group",
    "Ångström", "Секция", "Τμήμα", "演習", "Tutorial", "Seminar", "séminaire", "Online", "Hybrid",
)
SPECIAL_COURSE_SIS = (
    "MATH-101/F26", "HIST 200 Fall 2026", "FRANÇAIS-Élé 101", "PCT%100-A", "C++ 201+LAB", "0042",
    "ÉCON 101/É26", "ART&DESIGN?101#1", "a%2Fb", "space at end ",
)
SPECIAL_SECTION_SIS = ("00017", "SEC/01 é", "007%2F", "001 + 002", "0000")
DEPTS = ("MATH", "HIST", "BIOL", "CHEM", "PHYS", "ENGL", "ECON", "CS", "ART", "MUS", "PSYC", "FREN")
TS_2015 = 1_420_070_400  # 2015-01-01
TS_2026 = 1_767_225_600  # 2026-01-01


class _Generator:
    def __init__(self, seed, courses, large_sections, large_size, section_size, crosslist_rate) -> None:  # noqa: ANN001
        self.rng = random.Random(seed)
        self.seed = seed
        self.n_courses = courses
        self.n_large = courses // 50 if large_sections is None else large_sections
        self.large_size = large_size
        self.section_size = section_size
        self.crosslist_rate = crosslist_rate

    def ts(self, lo: int = TS_2015, hi: int = TS_2026) -> int:
        return self.rng.randrange(lo, hi)

    def run(self) -> Institution:
        accounts = self.accounts()
        terms = self.terms()
        courses = self.courses(accounts, terms)
        sections = self.sections(courses)
        users, enrollments = self.people(courses, sections)
        self.crosslist(courses, sections, enrollments)
        root = accounts[0].id
        return Institution(
            root_account_id=root, accounts=accounts, terms=terms, courses=courses, sections=sections,
            users=users, enrollments=enrollments, seed=self.seed,
        )

    def accounts(self) -> list[Account]:
        root = Account(SHARD + 1, "Example University", None, None)
        out = [root]
        colleges = [("ENG", "College of Engineering"), ("SCI", "College of Science"),
                    ("Arts & Sci/Hist", "Arts & Sciences: History"), ("MÉD", "Faculté de Médecine")]
        next_id = SHARD + 2
        for sis, name in colleges:
            college = Account(next_id, name, root.id, sis, integration_id=f"acct-{next_id % 1000}")
            out.append(college)
            next_id += 1
            for k in range(2):
                out.append(Account(next_id, f"{name} Dept {k + 1}", college.id, f"{sis}-D{k + 1}"))
                next_id += 1
        return out

    def terms(self) -> list[Term]:
        return [
            Term(SHARD + 1, "Default Term", None, None, None),
            Term(SHARD + 2, "Fall 2025", "F25", 1_756_684_800, 1_765_497_600),
            Term(SHARD + 3, "Spring 2026", "S26", 1_767_225_600, 1_777_593_600),
            Term(SHARD + 4, "Fall 2026", "F26", 1_788_220_800, 1_797_033_600),
        ]

    def courses(self, accounts: list[Account], terms: list[Term]) -> list[Course]:
        rng = self.rng
        out = []
        for i in range(self.n_courses):
            if i % 40 == 17:
                cid = HIGH_SHARD * SHARD + 2 * i + 1
            elif i == 29:
                cid = HUGE_SHARD * SHARD + i
            else:
                cid = SHARD + 1000 + 3 * i
            dept = DEPTS[i % len(DEPTS)]
            number = 100 + (i * 37) % 400
            term = terms[i % len(terms)]
            code = f"{dept}-{number}"
            r = rng.random()
            state = ("available" if r < 0.70 else "completed" if r < 0.80 else "created" if r < 0.87
                     else "claimed" if r < 0.92 else "deleted")
            special = i // 7 if i % 7 == 3 else None
            if special is not None and special < len(SPECIAL_COURSE_SIS):
                sis = SPECIAL_COURSE_SIS[special]
                state = "available"
            elif rng.random() < 0.15:
                sis = None
            else:
                sis = f"{code}-{term.sis_term_id or 'DFT'}-{i:04d}"
            created = self.ts()
            out.append(Course(
                id=cid, name=f"{code} {rng.choice(('Introduction', 'Topics', 'Méthodes', 'Seminar', 'Lab'))}",
                course_code=code, account_id=accounts[rng.randrange(len(accounts))].id, term_id=term.id,
                sis_course_id=sis, integration_id=f"crs-{i:05d}" if rng.random() < 0.3 else None,
                sis_import_id=(SHARD + 500 + rng.randrange(20)) if sis is not None else None,
                workflow_state=state, created_at=created, start_at=term.start_at, end_at=term.end_at,
                uuid=f"{rng.getrandbits(160):040x}",
            ))
        return out

    def sections(self, courses: list[Course]) -> list[Section]:
        rng = self.rng
        out = []
        special = iter(SPECIAL_SECTION_SIS)
        next_local = 5000
        counts = (1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 8)
        for course in courses:
            n = rng.choice(counts)
            shared_name = None
            for k in range(n):
                next_local += 1 + rng.randrange(3)
                if rng.random() < 0.02:
                    sid = HIGH_SHARD * SHARD + 2 * next_local + 1
                elif rng.random() < 0.003:
                    sid = HUGE_SHARD * SHARD + next_local
                else:
                    sid = SHARD + next_local
                word = rng.choice(SECTION_WORDS)
                name = f"{course.course_code} {word} {rng.randrange(1, 20):02d}"
                if shared_name is not None and rng.random() < 0.15:
                    name = shared_name  # same name twice in a course: id breaks the tie
                shared_name = name
                r = rng.random()
                if r < 0.05:
                    sis = next(special, None) or f"{rng.randrange(10**6):06d}"
                elif r < 0.2:
                    sis = None
                else:
                    sis = f"{rng.randrange(10**6):06d}"  # fixed width: leading zeros
                if sis is not None and sis in {s.sis_section_id for s in out[-12:]}:
                    sis = f"{sis}-{sid % 10**6}"
                start = self.ts(TS_2026 - 200 * 86400, TS_2026 + 200 * 86400) if rng.random() < 0.6 else None
                end = (start + 120 * 86400) if start is not None and rng.random() < 0.8 else None
                out.append(Section(
                    id=sid, course_id=course.id, nonxlist_course_id=None, name=name, sis_section_id=sis,
                    integration_id=f"sec-{sid % 10**7}" if rng.random() < 0.3 else None,
                    sis_import_id=(SHARD + 500 + rng.randrange(20)) if sis is not None else None,
                    start_at=start, end_at=end, restrict_enrollments_to_section_dates=rng.random() < 0.1,
                    created_at=self.ts(course.created_at, TS_2026 + 1), workflow_state=(
                        "deleted" if rng.random() < 0.05 else "active"),
                ))
        return out

    def people(self, courses: list[Course], sections: list[Section]) -> tuple[list[User], list[Enrollment]]:
        rng = self.rng
        lo, hi, mode = self.section_size
        sizes = [int(rng.triangular(lo, hi, mode)) for _ in sections]
        live = [i for i, s in enumerate(sections) if s.workflow_state == "active"]
        large_picks = rng.sample(live, min(self.n_large, len(live))) if live else []
        for i in large_picks:
            sizes[i] = rng.randint(*self.large_size)
        n_users = max(max(sizes, default=1), int(sum(sizes) / 2.5), 10)
        users = [self.user(k) for k in range(n_users)]
        enrollments: list[Enrollment] = []
        next_eid = [SHARD + 10**7]

        def enroll(user: User, section: Section, type_: str, state: str) -> Enrollment:
            next_eid[0] += 1
            created = max(user.created_at, section.created_at) + rng.randrange(86400 * 30)
            e = Enrollment(next_eid[0], user.id, section.id, section.course_id, type_, state, created,
                           created + rng.randrange(86400 * 60))
            enrollments.append(e)
            return e

        for section, size in zip(sections, sizes):
            members = rng.sample(range(n_users), size)
            n_ta = 0 if size < 15 else rng.randint(1, 3)
            observer_slots = rng.randint(1, 2) if rng.random() < 0.1 else 0
            first_student: int | None = None
            for pos, idx in enumerate(members):
                user = users[idx]
                if pos == 0:
                    type_ = "TeacherEnrollment"
                elif pos <= n_ta:
                    type_ = "TaEnrollment"
                elif pos == n_ta + 1 and rng.random() < 0.05:
                    type_ = "DesignerEnrollment"
                elif observer_slots and pos > size - 1 - observer_slots:
                    type_ = "ObserverEnrollment"
                else:
                    type_ = "StudentEnrollment"
                e = enroll(user, section, type_, self.state())
                if type_ == "ObserverEnrollment":
                    e.associated_user_id = first_student
                if type_ == "StudentEnrollment":
                    first_student = first_student or user.id
                    if rng.random() < 0.02:  # the same person is also a TA in this section
                        enroll(user, section, "TaEnrollment", "active")
        by_course: dict[int, list[Section]] = {}
        for s in sections:
            by_course.setdefault(s.course_id, []).append(s)
        next_uid = users[-1].id if users else SHARD
        for course in courses:  # a test student in some courses ("Student view")
            course_sections = by_course.get(course.id)
            if not course_sections or rng.random() >= 0.3:
                continue
            next_uid += 1
            ts = self.ts(course.created_at, TS_2026 + 1)
            fake = User(next_uid, "Test Student", "Student, Test", "Test Student", None, None, None, None,
                        None, None, f"https://{HOST}/images/messages/avatar-50.png", ts, fake_student=True)
            users.append(fake)
            enroll(fake, min(course_sections, key=lambda s: s.id), "StudentViewEnrollment", "active")
        return users, enrollments

    def state(self) -> str:
        r = self.rng.random()
        if r < 0.85:
            return "active"
        for limit, state in ((0.89, "invited"), (0.90, "creation_pending"), (0.94, "completed"),
                             (0.97, "inactive"), (0.985, "rejected")):
            if r < limit:
                return state
        return "deleted"

    def user(self, k: int) -> User:
        rng = self.rng
        if k % 500 == 251:
            uid = HIGH_SHARD * SHARD + 2 * k + 1
        elif k in (7, 4242):
            uid = HUGE_SHARD * SHARD + 10**6 + k
        else:
            uid = SHARD + 100_000 + k
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        r = rng.random()
        sis = None if r < 0.1 else f"{k:09d}" if r < 0.6 else f"S{k:07d}"
        login = f"{_ascii(first)[:1]}{_ascii(last)}{k}".lower().replace(" ", "").replace("'", "")
        return User(
            id=uid, name=name, sortable_name=f"{last}, {first}",
            short_name=first if rng.random() < 0.1 else name, sis_user_id=sis,
            integration_id=f"u-{k:06d}" if rng.random() < 0.3 else None,
            sis_import_id=(SHARD + 500 + rng.randrange(20)) if sis is not None else None,
            login_id=login if rng.random() < 0.8 else f"{login}@example.edu",
            email=None if rng.random() < 0.05 else f"{login}@example.edu",
            pronouns=rng.choice(PRONOUNS) if rng.random() < 0.15 else None,
            avatar_url=(f"https://{HOST}/images/thumbnails/{uid}/{rng.getrandbits(64):016x}"
                        if rng.random() < 0.7 else f"https://{HOST}/images/messages/avatar-50.png"),
            created_at=self.ts(),
        )

    def crosslist(self, courses: list[Course], sections: list[Section], enrollments: list[Enrollment]) -> None:
        rng = self.rng
        if len(courses) < 2:
            return
        moved: dict[int, int] = {}
        for s in sections:
            if rng.random() < self.crosslist_rate:
                dest = rng.choice(courses).id
                if dest != s.course_id:
                    s.nonxlist_course_id = s.course_id
                    s.course_id = dest
                    moved[s.id] = dest
        for e in enrollments:
            dest = moved.get(e.section_id)
            if dest is not None:
                e.course_id = dest


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or "x"
