"""The six GET endpoints as plain functions: (institution, call) -> Reply, no HTTP in sight (writes.py has
the five that change sections).

Each mirrors its Canvas controller action: lookup (404), permission (401/403), parameters (400), then the
collection, paged the way that action pages it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection

from exporter.sim.auth import Permissions
from exporter.sim.collation import casefold_contains
from exporter.sim.institution import COURSE_STATES, DEFAULT_COURSE_STATES, Course, Institution, RosterEntry, Section
from exporter.sim.pagination import (
    PageLinks,
    Params,
    as_list,
    known_total_page,
    page_for,
    per_page_for,
    unknown_total_page,
)
from exporter.sim.refs import resolve_account, resolve_course, resolve_section
from exporter.sim.views import STUDENTS_CAP, course_json, enrollment_json, iso, section_json, user_json

NOT_FOUND_BODY = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHORIZED_BODY = {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]}
MIN_SEARCH_TERM_LENGTH = 2  # the docs' "at least 2 characters"; SimOptions.min_search_term_length
ENROLLMENT_TYPE_PARAMS = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
    "student_view": "StudentViewEnrollment",
}


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class Forbidden(HttpError):
    """render_json_unauthorized; the server picks 401 or 403 from options.auth_error_updates."""

    def __init__(self) -> None:
        super().__init__(401, UNAUTHORIZED_BODY)


def not_found() -> HttpError:
    return HttpError(404, NOT_FOUND_BODY)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as an endpoint sees it: the caller's rights, the parameters, and the server's rules.

    params: for GETs the query (`k` and `k[]`); for writes Rails' merged nested parameters (forms.py)."""

    perms: Permissions
    params: Params | dict[str, Any]
    forbidden_courses: Collection[int] = ()
    students_cap: int | None = STUDENTS_CAP
    min_search_term_length: int = MIN_SEARCH_TERM_LENGTH
    lenient_dates: bool = False
    now: float = 0.0  # wall-clock seconds when the request arrived (created_at of a new section)


@dataclass(slots=True)
class Reply:
    payload: Any  # JSON-ready Python value
    links: PageLinks | None = None
    per_page: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def truthy(value: str | list[str] | None) -> bool:
    """Canvas::Plugin.value_to_boolean for the forms query strings carry."""
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "t", "on", "yes", "y")


def _present(value: str | list[str] | None) -> bool:
    return bool(value) and (not isinstance(value, str) or bool(value.strip()))


def _search_term(call: Call) -> str | None:
    """SearchTermHelper.validate_search_term: blank is no search; a non-string (search_term[]=x) or a term
    shorter than the minimum is a 400 whose message names the minimum."""
    term = call.params.get("search_term")
    if not _present(term):
        return None
    minimum = call.min_search_term_length
    if not isinstance(term, str) or len(term) < minimum:
        raise HttpError(400, {"errors": [{"field": "search_term", "code": "invalid",
                                          "message": f"{max(minimum, 1)} or more characters is required"}]})
    return term


def _readable_course(inst: Institution, call: Call, ref: str, *, allow_deleted: bool = False) -> Course:
    course = resolve_course(inst, ref)
    if course is None or (course.workflow_state == "deleted" and not allow_deleted):
        raise not_found()
    if course.id in call.forbidden_courses or not call.perms.read_roster:
        raise Forbidden()
    return course


def _readable_section(inst: Institution, call: Call, ref: str) -> Section:
    section = resolve_section(inst, ref)
    if section is None or section.workflow_state == "deleted":
        raise not_found()
    course = inst.courses.get(section.course_id)
    if course is None or course.workflow_state == "deleted":
        raise not_found()
    if course.id in call.forbidden_courses or not call.perms.read_roster:
        raise Forbidden()
    return section


# ----- GET /api/v1/accounts/:account_id/courses -----

def account_courses(inst: Institution, call: Call, account_ref: str) -> Reply:
    account = resolve_account(inst, account_ref)
    if account is None:
        raise not_found()
    if not call.perms.read_course_list:
        raise Forbidden()
    states = as_list(call.params.get("state"))
    if "all" in states:
        wanted = frozenset(COURSE_STATES)
    elif states:
        wanted = frozenset(s for s in states if s in COURSE_STATES)
    else:
        wanted = DEFAULT_COURSE_STATES
    courses: list[Course] = inst.account_courses(account.id, wanted)
    published = call.params.get("published")
    term = _search_term(call)
    if _present(published) or term is not None:
        want_published = truthy(published) if _present(published) else None
        read_sis = call.perms.read_sis
        courses = inst.cached(
            ("account_courses_filtered", account.id, wanted, want_published, term, read_sis),
            lambda: [c for c in courses if _course_matches(c, want_published, term, read_sis)])
    per_page = per_page_for(call.params)
    page = page_for(call.params)
    if "ui_invoked" in as_list(call.params.get("include")):
        chunk, links = known_total_page(courses, page, per_page)
    else:
        chunk, links = unknown_total_page(courses, page, per_page)
    return Reply([course_json(inst, c, call.perms) for c in chunk], links, per_page)


def _course_matches(c: Course, published: bool | None, term: str | None, read_sis: bool) -> bool:
    if published is not None and (c.workflow_state in ("available", "completed")) != published:
        return False
    return term is None or (casefold_contains(c.name, term) or casefold_contains(c.course_code, term)
                            or term == str(c.id) or (read_sis and casefold_contains(c.sis_course_id, term)))


# ----- GET /api/v1/courses/:id -----

def course_show(inst: Institution, call: Call, course_ref: str) -> Reply:
    allow_deleted = "all_courses" in as_list(call.params.get("include"))
    course = _readable_course(inst, call, course_ref, allow_deleted=allow_deleted)
    return Reply(course_json(inst, course, call.perms))


# ----- GET /api/v1/courses/:course_id/sections -----

def course_sections(inst: Institution, call: Call, course_ref: str) -> Reply:
    course = _readable_course(inst, call, course_ref)
    includes = frozenset(as_list(call.params.get("include")))
    sections: list[Section] = inst.course_sections(course.id)
    term = _search_term(call)
    if term is not None:
        sections = [s for s in sections if casefold_contains(s.name, term)]
    cap = call.students_cap
    if _present(call.params.get("all")):
        return Reply([section_json(inst, s, call.perms, includes, students_cap=cap) for s in sections])
    per_page = per_page_for(call.params)
    chunk, links = known_total_page(sections, page_for(call.params), per_page)
    return Reply([section_json(inst, s, call.perms, includes, students_cap=cap) for s in chunk], links, per_page)


# ----- GET /api/v1/courses/:course_id/sections/:id and GET /api/v1/sections/:id -----

def course_section_show(inst: Institution, call: Call, course_ref: str, section_ref: str) -> Reply:
    course = _readable_course(inst, call, course_ref)
    section = resolve_section(inst, section_ref)
    if section is None or section.workflow_state != "active" or section.course_id != course.id:
        raise not_found()
    includes = frozenset(as_list(call.params.get("include")))
    return Reply(section_json(inst, section, call.perms, includes, students_cap=call.students_cap))


def section_show(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _readable_section(inst, call, section_ref)
    includes = frozenset(as_list(call.params.get("include")))
    return Reply(section_json(inst, section, call.perms, includes, students_cap=call.students_cap))


# ----- GET /api/v1/sections/:id/users (modelled on CoursesController#users) -----

@dataclass(frozen=True, slots=True)
class RosterFilter:
    types: frozenset[str] | None  # enrollment class names; None: every type
    exclude_inactive: bool
    search_term: str | None
    perms: Permissions  # what search_term may match

    def keeps_enrollment(self, e) -> bool:  # noqa: ANN001
        return (self.types is None or e.type in self.types) and not (
            self.exclude_inactive and e.workflow_state == "inactive")

    def matches(self, entry: RosterEntry) -> bool:
        if not any(self.keeps_enrollment(e) for e in entry.enrollments):
            return False
        term = self.search_term
        if term is None:
            return True
        u, p = entry.user, self.perms
        return (casefold_contains(u.name, term) or term == str(u.id)
                or (p.view_user_logins and casefold_contains(u.login_id, term))
                or (p.read_sis and (casefold_contains(u.sis_user_id, term)
                                    or casefold_contains(u.integration_id, term)))
                or (p.read_email_addresses and casefold_contains(u.email, term)))


def roster_filter(call: Call) -> RosterFilter:
    raw_types = as_list(call.params.get("enrollment_type"))
    types = None
    if raw_types:
        unknown = [t for t in raw_types if t not in ENROLLMENT_TYPE_PARAMS]
        if unknown:
            raise HttpError(400, {"errors": [{"message": f"Invalid enrollment type: {unknown[0]}"}]})
        types = frozenset(ENROLLMENT_TYPE_PARAMS[t] for t in raw_types)
    return RosterFilter(types, truthy(call.params.get("exclude_inactive")), _search_term(call), call.perms)


def filtered_roster(inst: Institution, section_id: int, flt: RosterFilter) -> list[RosterEntry]:
    roster = inst.section_roster(section_id)
    if flt.types is None and not flt.exclude_inactive and flt.search_term is None:
        return roster
    key = ("roster_filter", section_id, flt)
    return inst.cached(key, lambda: [r for r in roster if flt.matches(r)])


def section_users(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _readable_section(inst, call, section_ref)
    flt = roster_filter(call)
    includes = set(as_list(call.params.get("include")))
    includes.update(("sis_user_id", "email"))
    roster = filtered_roster(inst, section.id, flt)
    per_page = per_page_for(call.params)
    chunk, links = unknown_total_page(roster, page_for(call.params), per_page)
    # Test students are dropped after paging, so a page can come out short while `next` stays.
    if not ("test_student" in includes or (flt.types and "StudentViewEnrollment" in flt.types)):
        chunk = [r for r in chunk if not r.user.fake_student]
    return Reply(users_payload(inst, chunk, call.perms, includes, flt), links, per_page)


def users_payload(inst: Institution, entries: list[RosterEntry], perms: Permissions, includes: set[str],
                  flt: RosterFilter) -> list[dict]:
    if "enrollments" in includes:
        return [user_json(r.user, perms, includes, hidden=r.personal_hidden,
                          enrollments=[enrollment_json(inst, e, perms) for e in r.enrollments
                                       if flt.keeps_enrollment(e)])
                for r in entries]
    return users_json_fast(entries, perms, includes)


def users_json_fast(entries: list[RosterEntry], perms: Permissions, includes: set[str]) -> list[dict]:
    """user_json for a page of roster entries, the permission checks hoisted out of the loop (hot path)."""
    sis = perms.read_sis and "sis_user_id" in includes
    sis_import = perms.manage_sis
    logins = perms.view_user_logins
    email = perms.read_email_addresses and "email" in includes
    avatar = "avatar_url" in includes
    out = []
    append = out.append
    for r in entries:
        u = r.user
        d = {"id": u.id, "name": u.name, "created_at": iso(u.created_at), "sortable_name": u.sortable_name,
             "short_name": u.short_name}
        if not r.personal_hidden:
            if sis:
                d["sis_user_id"] = u.sis_user_id
                d["integration_id"] = u.integration_id
            if sis_import:
                d["sis_import_id"] = u.sis_import_id
            if logins and u.login_id is not None:
                d["login_id"] = u.login_id
            if email:
                d["email"] = u.email
        if u.pronouns:
            d["pronouns"] = u.pronouns
        if avatar:
            d["avatar_url"] = u.avatar_url
        append(d)
    return out
