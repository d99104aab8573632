"""A hand-built institution whose every detail a test can name."""

from __future__ import annotations

from exporter.sim.institution import (
    HIGH_SHARD,
    SHARD,
    Account,
    Course,
    Enrollment,
    Institution,
    Section,
    Term,
    User,
)

ROOT = SHARD + 1
ENG = SHARD + 2
ENG_CS = SHARD + 3
MATH = SHARD + 100  # sis MATH-101/F26
ODD = HIGH_SHARD * SHARD + 1  # above 2**53, sis "a %+é 0042"
GONE = SHARD + 102  # deleted course
DRAFT = SHARD + 103  # unpublished, integration id "int/1", no SIS id
TS = 1_767_225_600

# sections
S_LAB_B, S_LAB_A, S_ELAN_ACCENT, S_ELAN, S_ZETA2, S_ZETA1, S_DELETED = (SHARD + 200 + i for i in range(7))
S_XLIST = HIGH_SHARD * SHARD + 301  # born in ODD, cross-listed into MATH
S_ODD = SHARD + 302  # stays in ODD
S_GONE = SHARD + 303  # in the deleted course
S_DRAFT = SHARD + 304

# users
U_ZOE, U_ZOE2, U_AGREN, U_AGREN2, U_BERG, U_TEST, U_PENDING, U_TWICE, U_INACTIVE, U_REJECTED, U_DELETED, \
    U_DONE = (SHARD + 1000 + i for i in range(12))
U_BIG = HIGH_SHARD * SHARD + 2001


def build() -> Institution:
    accounts = [
        Account(ROOT, "Root", None, None),
        Account(ENG, "Engineering", ROOT, "ENG"),
        Account(ENG_CS, "CS", ENG, "ENG/CS é", integration_id="acct+1"),
    ]
    terms = [Term(SHARD + 1, "Default", None, None, None)]

    def course(id_: int, sis: str | None, account: int, state: str, integration: str | None = None) -> Course:
        return Course(id_, f"Course {id_}", f"C{id_ % 1000}", account, SHARD + 1, sis, integration,
                      SHARD + 7 if sis else None, state, TS, None, None, f"{id_:040x}")

    courses = [
        course(MATH, "MATH-101/F26", ROOT, "available"),
        course(ODD, "a %+é 0042", ENG_CS, "created"),
        course(GONE, "DEL", ENG, "deleted"),
        course(DRAFT, None, ENG, "claimed", integration="int/1"),
    ]

    def section(id_: int, course_id: int, name: str, sis: str | None = None, state: str = "active",
                nonxlist: int | None = None) -> Section:
        return Section(id_, course_id, nonxlist, name, sis, None, SHARD + 9 if sis else None,
                       TS if sis else None, None, False, TS + id_ % 1000, state)

    sections = [
        section(S_LAB_B, MATH, "lab b", "00017"),
        section(S_LAB_A, MATH, "Lab A", "SEC/01 é"),
        section(S_ELAN_ACCENT, MATH, "élan", "007%2F"),
        section(S_ELAN, MATH, "Elan", "001 + 002"),
        section(S_ZETA2, MATH, "Zeta"),
        section(S_ZETA1, MATH, "Zeta"),
        section(S_DELETED, MATH, "Aardvark", state="deleted"),
        section(S_XLIST, MATH, "Cross-listed", "XL-1", nonxlist=ODD),
        section(S_ODD, ODD, "Odd one"),
        section(S_GONE, GONE, "In a deleted course"),
        section(S_DRAFT, DRAFT, "Draft section"),
    ]

    def user(id_: int, sortable: str, **kw: object) -> User:
        last, _, first = sortable.partition(", ")
        fields: dict = dict(name=f"{first} {last}", sortable_name=sortable, short_name=first,
                            sis_user_id=f"{id_ % 10000:08d}", integration_id=None, sis_import_id=SHARD + 9,
                            login_id=f"login{id_ % 10000}", email=f"u{id_ % 10000}@example.edu", pronouns=None,
                            avatar_url=f"https://canvas.example.edu/a/{id_}", created_at=TS - id_ % 1000)
        fields.update(kw)
        return User(id_, **fields)

    users = [
        user(U_ZOE, "Zoë, Ann", pronouns="she/her"),
        user(U_ZOE2, "zoe, Bob"),
        user(U_AGREN, "Ågren, Cy"),
        user(U_AGREN2, "agren, Di"),
        user(U_BERG, "Berg, Ed", sis_user_id=None),
        user(U_TEST, "Student, Test", sis_user_id=None, login_id=None, email=None, fake_student=True),
        user(U_PENDING, "Pending, Pat"),
        user(U_TWICE, "Twice, Tom"),
        user(U_INACTIVE, "Idle, Ida"),
        user(U_REJECTED, "No, Rita"),
        user(U_DELETED, "Gone, Gus"),
        user(U_DONE, "Done, Dan"),
        user(U_BIG, "Big, Id"),
    ]
    enrollments: list[Enrollment] = []

    def enroll(user_id: int, section_id: int, type_: str = "StudentEnrollment", state: str = "active") -> None:
        course_id = next(s.course_id for s in sections if s.id == section_id)
        enrollments.append(Enrollment(SHARD + 5000 + len(enrollments), user_id, section_id, course_id, type_,
                                      state, TS, TS))

    # S_LAB_A holds the interesting roster
    enroll(U_BERG, S_LAB_A, "TeacherEnrollment")
    for u in (U_ZOE, U_ZOE2, U_AGREN, U_AGREN2, U_BIG):
        enroll(u, S_LAB_A)
    enroll(U_TEST, S_LAB_A, "StudentViewEnrollment")
    enroll(U_PENDING, S_LAB_A, state="invited")
    enroll(U_TWICE, S_LAB_A)
    enroll(U_TWICE, S_LAB_A, "TaEnrollment")
    enroll(U_INACTIVE, S_LAB_A, state="inactive")
    enroll(U_REJECTED, S_LAB_A, state="rejected")
    enroll(U_DELETED, S_LAB_A, state="deleted")
    enroll(U_DONE, S_LAB_A, state="completed")
    enroll(U_DONE, S_LAB_A, "ObserverEnrollment", "invited")
    # elsewhere
    enroll(U_ZOE, S_XLIST)
    enroll(U_AGREN, S_XLIST, "TaEnrollment")
    enroll(U_ZOE, S_ODD)
    enroll(U_BERG, S_GONE, "TeacherEnrollment")
    enroll(U_BERG, S_DRAFT, "DesignerEnrollment")
    enroll(U_PENDING, S_DRAFT, state="creation_pending")
    return Institution(root_account_id=ROOT, accounts=accounts, terms=terms, courses=courses, sections=sections,
                       users=users, enrollments=enrollments)
