"""The Sections API's five write operations as plain functions: (institution, call, *refs) -> Reply.

Each follows its SectionsController action (create, update, destroy, crosslist, uncrosslist) and the
CourseSection model's validations: lookup (404), permission (401, or 403 with api_auth_error_updates), the
action's own early answers, then validation (400 with ActiveModel errors) and the change, which goes
through the Institution's mutation methods so every cached view and the ground truth follow.
Every success answers the section as section_json with no includes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from exporter.sim.endpoints import Call, Forbidden, HttpError, Reply, not_found
from exporter.sim.forms import (
    InvalidTime,
    parse_time,
    presence,
    rails_boolean,
    rails_string,
    ruby_truthy,
    value_to_boolean,
)
from exporter.sim.institution import Course, Institution, Section
from exporter.sim.refs import resolve_course, resolve_section
from exporter.sim.views import section_json

MAXIMUM_STRING_LENGTH = 255  # ActiveRecord::Base.maximum_string_length
ENROLLMENTS_LEFT_BODY = {"message": "You can't delete a section that has enrollments"}
NOT_CROSSLISTED_BODY = {"message": "section is not cross-listed"}
SIS_UPDATE_REFUSED_BODY = {"message": "You must have manage_sis permission to update sis attributes"}
# course_section_params: what the action takes from course_section[...]; with override_sis_stickiness=false
# only the one field that is not SIS-sticky.
SECTION_PARAMS = ("name", "start_at", "end_at", "restrict_enrollments_to_section_dates")
NON_STICKY_PARAMS = ("restrict_enrollments_to_section_dates",)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One ActiveModel error as Canvas's InstructureHashReporter renders it."""

    attribute: str
    type: str
    message: str


def invalid(errors: list[FieldError]) -> HttpError:
    """`render json: @section.errors, status: :bad_request`."""
    by_attribute: dict[str, list[dict[str, str]]] = {}
    for e in errors:
        by_attribute.setdefault(e.attribute, []).append(
            {"attribute": e.attribute, "type": e.type, "message": e.message})
    return HttpError(400, {"errors": by_attribute})


def _said(attribute: str, message: str) -> FieldError:
    """errors.add(attr, "text"): a string message is both the type and the message."""
    return FieldError(attribute, message, message)


# ----- lookups and permissions -----

def _live_course(inst: Institution, ref: str) -> Course:
    course = resolve_course(inst, ref)
    if course is None or course.workflow_state == "deleted":
        raise not_found()
    return course


def _live_section(inst: Institution, ref: str) -> Section:
    """require_section for /sections/:id: 404 if it, or its course, is deleted."""
    section = resolve_section(inst, ref)
    if section is None or section.workflow_state == "deleted":
        raise not_found()
    course = inst.courses.get(section.course_id)
    if course is None or course.workflow_state == "deleted":
        raise not_found()
    return section


def _require(call: Call, course_id: int, allowed: bool) -> None:
    if not allowed or course_id in call.forbidden_courses:
        raise Forbidden()


def _sticky_fields_protected(call: Call) -> bool:
    """`params[:override_sis_stickiness] && !value_to_boolean(...)`: only a given, false-like value protects.
    (A JSON false is falsy in Ruby, so it does not.)"""
    value = call.params.get("override_sis_stickiness")
    return ruby_truthy(value) and not value_to_boolean(value)


def _course_section(call: Call) -> dict[str, Any]:
    """params[:course_section] as a copy, hashes and arrays under it dropped (no field takes one)."""
    raw = call.params.get("course_section")
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if not isinstance(v, (dict, list))}


# ----- the fields a request sets -----

def _section_params(call: Call, raw: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """course_section_params, typecast the way ActiveRecord assigns them. Unparseable dates are errors, or
    None with call.lenient_dates."""
    permitted = NON_STICKY_PARAMS if _sticky_fields_protected(call) else SECTION_PARAMS
    changes: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key in permitted:
        if key not in raw:
            continue
        value = raw[key]
        if key == "name":
            changes[key] = rails_string(value)
        elif key == "restrict_enrollments_to_section_dates":
            changes[key] = rails_boolean(value)
        else:
            try:
                changes[key] = parse_time(value)
            except InvalidTime:
                if not call.lenient_dates:
                    errors.append(FieldError(key, "invalid", "invalid"))
                changes[key] = None
    return changes, errors


def _validate(inst: Institution, section: Section | None, values: dict[str, Any]) -> list[FieldError]:
    """CourseSection's before_validation callbacks (which abort on the first SIS clash) and validations.
    `values` are the fields being set; the rest come from `section` (None: a new section)."""
    def value(name: str) -> Any:
        return values[name] if name in values else getattr(section, name, None)

    own_id = section.id if section is not None else None
    sis = value("sis_section_id")
    if "sis_section_id" in values and sis is not None and inst.lookup_sis("section", "sis", sis) not in (None, own_id):
        return [_said("sis_source_id", f'SIS ID "{sis}" is already in use')]
    integration = value("integration_id")
    if ("integration_id" in values and integration is not None
            and inst.lookup_sis("section", "integration", integration) not in (None, own_id)):
        # sic: Canvas's message has this typo
        return [_said("integration_id", f'INTEGRATRION ID "{integration}" is already in use')]
    errors = []
    if sis is not None and len(sis) > MAXIMUM_STRING_LENGTH:
        errors.append(FieldError("sis_source_id", "too_long", "too_long"))
    name = value("name")
    if name is not None and len(name) > MAXIMUM_STRING_LENGTH:
        errors.append(FieldError("name", "too_long", "too_long"))
    start, end = value("start_at"), value("end_at")
    if start is not None and end is not None and end < start:
        errors.append(_said("end_at", "End date cannot be before start date"))
    return errors


def _default_name(course: Course, now: float) -> str:
    """infer_defaults: `"#{course.name} #{Time.zone.today}"` (here in UTC)."""
    return f"{course.name} {time.strftime('%Y-%m-%d', time.gmtime(now))}"


def _answer(inst: Institution, call: Call, section: Section) -> Reply:
    return Reply(section_json(inst, section, call.perms, ()))


# ----- POST /api/v1/courses/:course_id/sections -----

def section_create(inst: Institution, call: Call, course_ref: str) -> Reply:
    course = _live_course(inst, course_ref)
    _require(call, course.id, call.perms.manage_sections)
    raw = _course_section(call)
    sis_id = raw.pop("sis_section_id", None)
    integration_id = raw.pop("integration_id", None)
    can_manage_sis = call.perms.manage_sis  # without it both are ignored, as documented

    revived = None
    if can_manage_sis and presence(sis_id) and value_to_boolean(call.params.get("enable_sis_reactivation")):
        revived = next((s for s in inst.sections.values() if s.course_id == course.id
                        and s.workflow_state == "deleted" and s.sis_section_id == presence(sis_id)), None)
    errors: list[FieldError] = []
    if revived is not None:  # course_section_params are not applied to a reactivated section
        values: dict[str, Any] = {"workflow_state": "active"}
    else:
        values, errors = _section_params(call, raw)
        if values.get("name") is None:
            values["name"] = _default_name(course, call.now)
    if can_manage_sis:
        values["sis_section_id"] = presence(sis_id)
        values["integration_id"] = presence(integration_id)
    errors = errors + _validate(inst, revived, values)
    if errors:
        raise invalid(errors)
    if revived is not None:
        return _answer(inst, call, inst.update_section(revived.id, **values))
    created = inst.create_section(course.id, values.pop("name"), created_at=int(call.now), **values)
    return _answer(inst, call, created)


# ----- PUT /api/v1/sections/:id -----

def section_update(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _live_section(inst, section_ref)
    _require(call, section.course_id, call.perms.manage_sections)
    raw = _course_section(call)
    raw.pop("sis_source_id", None)  # the API reads sis_section_id only
    sis_id = raw.pop("sis_section_id", None)
    integration_id = raw.pop("integration_id", None)
    values: dict[str, Any] = {}
    if ruby_truthy(sis_id) or ruby_truthy(integration_id):
        if not call.perms.manage_sis:
            raise HttpError(401, SIS_UPDATE_REFUSED_BODY)
        if ruby_truthy(sis_id):
            values["sis_section_id"] = None if sis_id == "" else rails_string(sis_id)
        if ruby_truthy(integration_id):
            values["integration_id"] = None if integration_id == "" else rails_string(integration_id)
    fields, errors = _section_params(call, raw)
    if "name" in fields and fields["name"] is None:
        fields["name"] = _default_name(inst.courses[section.course_id], call.now)
    values.update(fields)
    errors = errors + _validate(inst, section, values)
    if errors:
        raise invalid(errors)
    if values:
        inst.update_section(section.id, **values)
    return _answer(inst, call, section)


# ----- DELETE /api/v1/sections/:id -----

def section_delete(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _live_section(inst, section_ref)
    _require(call, section.course_id, call.perms.manage_sections)
    if not inst.section_deletable(section.id):
        raise HttpError(400, ENROLLMENTS_LEFT_BODY)
    inst.delete_section(section.id)
    return _answer(inst, call, section)  # the former section


# ----- POST /api/v1/sections/:id/crosslist/:new_course_id -----

def section_crosslist(inst: Institution, call: Call, section_ref: str, course_ref: str) -> Reply:
    section = _live_section(inst, section_ref)
    destination = _live_course(inst, course_ref)  # not_deleted courses of the root account
    if _sticky_fields_protected(call):
        return _answer(inst, call, section)  # Canvas answers before its permission checks here
    _require(call, section.course_id, call.perms.manage_sections)
    _require(call, destination.id, call.perms.manage_courses)
    inst.crosslist_section(section.id, destination.id)
    return _answer(inst, call, section)


# ----- DELETE /api/v1/sections/:id/crosslist -----

def section_uncrosslist(inst: Institution, call: Call, section_ref: str) -> Reply:
    section = _live_section(inst, section_ref)
    if section.nonxlist_course_id is None:
        raise HttpError(400, NOT_CROSSLISTED_BODY)  # before the permission checks, as Canvas does
    _require(call, section.course_id, call.perms.manage_sections)
    _require(call, section.nonxlist_course_id, call.perms.manage_courses)
    if not _sticky_fields_protected(call):
        inst.uncrosslist_section(section.id)
    return _answer(inst, call, section)
