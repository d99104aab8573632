"""JSON shapes: section_json, user_json, course_json, enrollment_json (lib/api/v1/*.rb), as Python dicts.

The same builders feed the HTTP server and the ground truth, so the truth is what the server says by the
institution's rules, not what a client makes of it.
"""

from __future__ import annotations

import time
from typing import AbstractSet, Any

from exporter.sim.auth import Permissions
from exporter.sim.institution import HOST, ROLE_IDS, Course, Enrollment, Institution, Section, User

SECTION_INCLUDES = frozenset({"students", "avatar_url", "enrollments", "total_students", "passback_status",
                              "permissions", "user_count"})
# include[]=students is capped (documented, value not found in Canvas's source); SimOptions.students_cap.
STUDENTS_CAP = 1000
USER_COUNT_STATES = frozenset({"active", "invited", "creation_pending"})
_COURSE_API_STATE = {"created": "unpublished", "claimed": "unpublished"}
_iso_cache: dict[int, str] = {}


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    s = _iso_cache.get(ts)
    if s is None:
        s = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        if len(_iso_cache) < 1_000_000:
            _iso_cache[ts] = s
    return s


def user_json(
    user: User,
    perms: Permissions,
    includes: AbstractSet[str],
    *,
    hidden: bool = False,
    enrollments: list[dict] | None = None,
) -> dict[str, Any]:
    """hidden: excludes pseudonym and personal_info (the user only has pending enrollments here)."""
    d: dict[str, Any] = {
        "id": user.id,
        "name": user.name,
        "created_at": iso(user.created_at),
        "sortable_name": user.sortable_name,
        "short_name": user.short_name,
    }
    if not hidden:
        if perms.read_sis and "sis_user_id" in includes:
            d["sis_user_id"] = user.sis_user_id
            d["integration_id"] = user.integration_id
        if perms.manage_sis:
            d["sis_import_id"] = user.sis_import_id
        if perms.view_user_logins and user.login_id is not None:
            d["login_id"] = user.login_id
        if perms.read_email_addresses and "email" in includes:
            d["email"] = user.email
    if user.pronouns:
        d["pronouns"] = user.pronouns
    if "avatar_url" in includes:
        d["avatar_url"] = user.avatar_url
    if enrollments is not None:
        d["enrollments"] = enrollments
    return d


def enrollment_json(inst: Institution, e: Enrollment, perms: Permissions) -> dict[str, Any]:
    section = inst.sections[e.section_id]
    course = inst.courses.get(e.course_id)
    deleted = section.workflow_state == "deleted" or (course is not None and course.workflow_state == "deleted")
    d: dict[str, Any] = {
        "id": e.id,
        "user_id": e.user_id,
        "course_id": e.course_id,
        "type": e.type,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
        "associated_user_id": e.associated_user_id,
        "start_at": None,
        "end_at": None,
        "course_section_id": e.section_id,
        "root_account_id": inst.root_account_id,
        "limit_privileges_to_course_section": e.limit_privileges_to_course_section,
        "enrollment_state": "deleted" if deleted else e.workflow_state,
        "role": e.type,
        "role_id": ROLE_IDS[e.type],
        "last_activity_at": None,
        "last_attended_at": None,
        "total_activity_time": 0,
        "html_url": f"https://{HOST}/courses/{e.course_id}/users/{e.user_id}",
    }
    if e.type in ("StudentEnrollment", "StudentViewEnrollment"):
        d["grades"] = {
            "html_url": f"https://{HOST}/courses/{e.course_id}/grades/{e.user_id}",
            "current_grade": None, "current_score": None, "final_grade": None, "final_score": None,
            "unposted_current_score": None, "unposted_current_grade": None,
            "unposted_final_score": None, "unposted_final_grade": None,
        }
    if perms.read_sis:
        user = inst.users[e.user_id]
        d["sis_course_id"] = course.sis_course_id if course else None
        d["course_integration_id"] = course.integration_id if course else None
        d["sis_section_id"] = section.sis_section_id
        d["section_integration_id"] = section.integration_id
        d["sis_user_id"] = user.sis_user_id
    if perms.manage_sis:
        d["sis_import_id"] = None
    return d


def section_json(inst: Institution, section: Section, perms: Permissions, includes: AbstractSet[str],
                 *, students_cap: int | None = STUDENTS_CAP) -> dict:
    course = inst.courses[section.course_id]
    d: dict[str, Any] = {
        "id": section.id,
        "course_id": section.course_id,
        "name": section.name,
        "start_at": iso(section.start_at),
        "end_at": iso(section.end_at),
        "created_at": iso(section.created_at),
        "restrict_enrollments_to_section_dates": section.restrict_enrollments_to_section_dates,
        "nonxlist_course_id": section.nonxlist_course_id,
    }
    if perms.read_sis or perms.manage_sis:
        d["sis_section_id"] = section.sis_section_id
        d["sis_course_id"] = course.sis_course_id
        d["integration_id"] = section.integration_id
    if perms.manage_sis:
        d["sis_import_id"] = section.sis_import_id
    if not includes or not perms.read_roster:  # includes are dropped silently without roster rights
        return d
    if "students" in includes:
        d["students"] = _students(inst, section, perms, includes, students_cap)
    if "total_students" in includes:
        d["total_students"] = inst.total_students(section.id)
    if "passback_status" in includes:
        # post_grades_status_json: the section's last SIS grade-passback status; the simulator has none.
        d["passback_status"] = None
    if "permissions" in includes:
        d["permissions"] = {"manage_calendar": perms.manage_calendar}
    if "user_count" in includes:  # undocumented: non-fake enrollments active or pending
        d["user_count"] = sum(1 for e in inst.enrollments_in_section(section.id)
                              if e.type != "StudentViewEnrollment" and e.workflow_state in USER_COUNT_STATES)
    return d


def _students(inst: Institution, section: Section, perms: Permissions, includes: AbstractSet[str],
              cap: int | None) -> list[dict] | None:
    """One user_json per non-deleted StudentEnrollment (a user enrolled twice appears twice), in enrollment
    id order (find_each), at most `cap` of them; null rather than []."""
    user_includes = includes & {"avatar_url"} | {"sis_user_id"}
    with_enrollments = "enrollments" in includes
    students = []
    for e in sorted(inst.enrollments_in_section(section.id), key=lambda e: e.id):
        if e.type != "StudentEnrollment" or e.workflow_state == "deleted":
            continue
        if cap is not None and len(students) >= cap:
            break
        enrollments = [enrollment_json(inst, e, perms)] if with_enrollments else None
        students.append(user_json(inst.users[e.user_id], perms, user_includes, enrollments=enrollments))
    return students or None


def course_json(inst: Institution, course: Course, perms: Permissions) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": course.id,
        "name": course.name,
        "account_id": course.account_id,
        "uuid": course.uuid,
        "start_at": iso(course.start_at),
        "grading_standard_id": None,
        "is_public": course.is_public,
        "created_at": iso(course.created_at),
        "course_code": course.course_code,
        "default_view": "modules",
        "root_account_id": inst.root_account_id,
        "enrollment_term_id": course.term_id,
        "license": "private",
        "end_at": iso(course.end_at),
        "public_syllabus": False,
        "public_syllabus_to_auth": False,
        "storage_quota_mb": 500,
        "is_public_to_auth_users": False,
        "apply_assignment_group_weights": False,
        "time_zone": "America/Denver",
        "blueprint": False,
        "restrict_enrollments_to_course_dates": False,
        "workflow_state": _COURSE_API_STATE.get(course.workflow_state, course.workflow_state),
    }
    if perms.read_sis or perms.manage_sis:
        d["sis_course_id"] = course.sis_course_id
        d["integration_id"] = course.integration_id
    if perms.manage_sis:
        d["sis_import_id"] = course.sis_import_id
    return d


def stringify_ids(value: Any) -> Any:
    """StringifyIds: Integers under keys matching /(^|_)id$/ (and in arrays under /(^|_)ids$/) become strings."""
    if isinstance(value, list):
        return [stringify_ids(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        key = k.lower()
        if (key == "id" or key.endswith("_id")) and type(v) is int:
            out[k] = str(v)
        elif (key == "ids" or key.endswith("_ids")) and isinstance(v, list):
            out[k] = [str(x) if type(x) is int else x for x in v]
        elif isinstance(v, (dict, list)):
            out[k] = stringify_ids(v)
        else:
            out[k] = v
    return out
