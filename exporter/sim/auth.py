"""Tokens the simulator accepts and what each may see."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN_TOKEN = "1~simulator-admin-token"
NOSIS_TOKEN = "1~simulator-nosis-token"


@dataclass(frozen=True, slots=True)
class Permissions:
    read_course_list: bool = True  # GET /accounts/:id/courses
    read_roster: bool = True  # sections, section users, section includes
    read_sis: bool = False  # sis_*_id and integration_id keys
    manage_sis: bool = False  # sis_import_id keys
    view_user_logins: bool = False  # login_id
    read_email_addresses: bool = False  # email
    # Writes. manage_sis above also decides whether sis_section_id / integration_id may be set.
    manage_sections: bool = False  # manage_sections_add/_edit/_delete: create, edit, delete a section
    manage_courses: bool = False  # :manage on a course: cross-list into it, or back into it
    manage_calendar: bool = False  # what include[]=permissions reports for every section


ADMIN = Permissions(read_sis=True, manage_sis=True, view_user_logins=True, read_email_addresses=True,
                    manage_sections=True, manage_courses=True, manage_calendar=True)
# A teacher-like token: reads rosters and emails, sees no SIS ids, no sis_import_id and no login ids; may
# create, edit and delete sections (SIS ids ignored or refused), but not cross-list them.
NOSIS = Permissions(read_email_addresses=True, manage_sections=True, manage_calendar=True)

DEFAULT_TOKENS: dict[str, Permissions] = {ADMIN_TOKEN: ADMIN, NOSIS_TOKEN: NOSIS}


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token from `Authorization: Bearer x`, else the `access_token` query parameter."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if query_token:
        return query_token
    return None
