"""The six GET endpoints as plain functions: (institution, call) -> Reply, no HTTP in sight (writes.py has
the five that change sections).

Each mirrors its Canvas controller action: lookup (404), permission (401/403), parameters (400), then the
collection, paged the way that action pages it. The answer is JSON-ready Python (`Reply.payload`), or,
when the call carries the server's RenderCache, the same JSON already as bytes (`Reply.body`, render.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Hashable

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

if TYPE_CHECKING:
    from exporter.sim.render import RenderCache

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
    string_ids: bool = False  # Accept: application/json+canvas-string-ids (applied by whoever renders)
    render: RenderCache | None = None  # GETs: answer with the cached bytes of each item


@dataclass(slots=True)
class Reply:
    payload: Any  # JSON-ready Python value (integer ids; the server applies string ids); None with body
    links: PageLinks | None = None
    per_page: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # the payload already as JSON, string ids applied if the call asked
    items: int = 1  # with body: how many items it holds (X-Request-Cost may depend on it)


def _page_reply(call: Call, variant: tuple, items: list, offset: int, count: int,
                build: Callable[[Any], dict[str, Any]], links: PageLinks | None = None, per_page: int = 0) -> Reply:
    """items[offset:offset + count] (courses or sections, keyed by id), from the cache when the call has
    one, else as Python values. `items` is a list the institution caches (render.RenderCache.page)."""
    if call.render is None:
        return Reply([build(item) for item in items[offset:offset + count]], links, per_page)
    body, n = call.render.page(variant, items, offset, count, string_ids=call.string_ids, key=_by_id,
                               build=lambda some: [build(item) for item in some])
    return Reply(None, links, per_page, body=body, items=n)


def _one_reply(call: Call, variant: tuple, item: Any, key: Hashable, build: Callable[[Any], dict[str, Any]]) -> Reply:
    if call.render is None:
        return Reply(build(item))
    return Reply(None, body=call.render.one(variant, item, key, build, call.string_ids))


def _by_id(item: Course | Section) -> int:
    return item.id


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
    perms = call.perms
    return _page_reply(call, ("course", perms), courses, (page - 1) * per_page, len(chunk),
                       lambda c: course_json(inst, c, perms), links, per_page)


def _course_matches(c: Course, published: bool | None, term: str | None, read_sis: bool) -> bool:
    if published is not None and (c.workflow_state in ("available", "completed")) != published:
        return False
    return term is None or (casefold_contains(c.name, term) or casefold_contains(c.course_code, term)
                            or term == str(c.id) or (read_sis and casefold_contains(c.sis_course_id, term)))


# ----- GET /api/v1/courses/:id -----

def course_show(inst: Institution, call: Call, course_ref: str) -> Reply:
    allow_deleted = "all_courses" in as_list(call.params.get("include"))
    course = _readable_course(inst, call, course_ref, allow_deleted=allow_deleted)
    perms = call.perms
    return _one_reply(call, ("course", perms), course, course.id, lambda c: course_json(inst, c, perms))


# ----- GET /api/v1/courses/:course_id/sections -----

def course_sections(inst: Institution, call: Call, course_ref: str) -> Reply:
    course = _readable_course(inst, call, course_ref)
    includes = frozenset(as_list(call.params.get("include")))
    sections: list[Section] = inst.course_sections(course.id)
    term = _search_term(call)
    if term is not None:
        everything = sections
        sections = inst.cached(("course_sections_search", course.id, term),
                               lambda: [s for s in everything if casefold_contains(s.name, term)])
    variant, build = _section_rendering(inst, call, includes)
    if _present(call.params.get("all")):
        return _page_reply(call, variant, sections, 0, len(sections), build)
    per_page = per_page_for(call.params)
    page = page_for(call.params)
    chunk, links = known_total_page(sections, page, per_page)
    return _page_reply(call, variant, sections, (page - 1) * per_page, len(chunk), build, links, per_page)


def _section_rendering(inst: Institution, call: Call, includes: frozenset[str]
                       ) -> tuple[tuple, Callable[[Section], dict[str, Any]]]:
    """section_json's variant key (all it reads besides the model) and the builder."""
    perms, cap = call.perms, call.students_cap
    return ("section", perms, includes, cap), lambda s: section_json(inst, s, perms, includes, students_cap=cap)


# ----- GET /api/v1/courses/:course_id/sections/:id and GET /api/v1/sections/:id -----

def course_section_show(inst: Institution, call: Call, course_ref: str, section_ref: str) -> Reply:
    course = _readable_course(inst, call, course_ref)
    section = resolve_section(inst, section_ref)
    if section is None or section.workflow_state != "active" or section.course_id != course.id:
        raise not_found()
    includes = frozenset(as_list(call.params.get("include")))
    variant, build = _section_rendering(inst, call, includes)
    return _one_reply(call, variant, section, section.id, build)


def section_show(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _readable_section(inst, call, section_ref)
    includes = frozenset(as_list(call.params.get("include")))
    variant, build = _section_rendering(inst, call, includes)
    return _one_reply(call, variant, section, section.id, build)


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
    page = page_for(call.params)
    chunk, links = unknown_total_page(roster, page, per_page)
    # Test students are dropped after paging, so a page can come out short while `next` stays.
    keep_test_students = "test_student" in includes or bool(flt.types and "StudentViewEnrollment" in flt.types)
    if call.render is not None and "enrollments" not in includes:  # with enrollments: not cached
        perms = call.perms
        variant = ("user", perms, USER_INCLUDES & includes, keep_test_students)
        body, n = call.render.page(variant, roster, (page - 1) * per_page, len(chunk), string_ids=call.string_ids,
                                   key=_user_key, build=lambda entries: users_json_fast(entries, perms, includes),
                                   drop=None if keep_test_students else _is_test_student)
        return Reply(None, links, per_page, body=body, items=n)
    if not keep_test_students:
        chunk = [r for r in chunk if not r.user.fake_student]
    return Reply(users_payload(inst, chunk, call.perms, includes, flt), links, per_page)


# users_json_fast reads these include[] values only; the others do not change a user's JSON
USER_INCLUDES = frozenset({"sis_user_id", "email", "avatar_url"})


def _user_key(entry: RosterEntry) -> tuple[int, bool]:
    """What a user's JSON depends on besides the variant: the user, and whether personal fields show."""
    return entry.user.id, entry.personal_hidden


def _is_test_student(entry: RosterEntry) -> bool:
    return entry.user.fake_student


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
