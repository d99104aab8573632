"""Path references as Canvas's `Api.sis_parse_id` reads them: ids, `sis_*:` / `hex:sis_*:` forms, `self`.

The server percent-decodes each path segment exactly once before calling these.
"""

from __future__ import annotations

import re

from exporter.sim.institution import SHARD, Account, Course, Institution, Section

ID_REGEX = re.compile(r"\A\d{1,19}\Z")
SHARD_ID_REGEX = re.compile(r"\A(\d+)~(\d+)\Z")
HEX_REGEX = re.compile(r"\Ahex:(lti_[\w_]+|sis_[\w_]+):((?:[0-9A-Fa-f]{2})+)\Z")
SIS_REGEX = re.compile(r"\A(lti_[\w_]+|sis_[\w_]+):(.+)\Z", re.DOTALL)
INT64_MAX = 2**63 - 1

# SIS_MAPPINGS, reduced to the columns this model has.
_COLUMNS = {
    "account": {"sis_account_id": "sis", "sis_integration_id": "integration"},
    "course": {"sis_course_id": "sis", "sis_integration_id": "integration"},
    "section": {"sis_section_id": "sis", "sis_integration_id": "integration"},
}


def parse_id(ref: str) -> int | tuple[str, str] | None:
    """An int id, a (prefix, value) SIS pair, or None when the reference matches no form."""
    if m := HEX_REGEX.match(ref):
        try:
            return (m.group(1), bytes.fromhex(m.group(2)).decode("utf-8"))
        except UnicodeDecodeError:
            return None
    if m := SIS_REGEX.match(ref):
        return (m.group(1), m.group(2))
    if ID_REGEX.match(ref):
        value = int(ref)
        return value if value <= INT64_MAX else None
    if m := SHARD_ID_REGEX.match(ref):
        return int(m.group(1)) * SHARD + int(m.group(2))
    return None


def _resolve(inst: Institution, kind: str, ref: str, table: dict) -> int | None:
    parsed = parse_id(ref)
    if parsed is None:
        return None
    if isinstance(parsed, int):
        if parsed in table:
            return parsed
        # Canvas reads a small id as local to the current shard (here shard 1).
        if parsed < SHARD and SHARD + parsed in table:
            return SHARD + parsed
        return None
    prefix, value = parsed
    column = _COLUMNS[kind].get(prefix)
    return inst.lookup_sis(kind, column, value) if column else None


def resolve_course(inst: Institution, ref: str) -> Course | None:
    cid = _resolve(inst, "course", ref, inst.courses)
    return inst.courses.get(cid) if cid is not None else None


def resolve_section(inst: Institution, ref: str) -> Section | None:
    sid = _resolve(inst, "section", ref, inst.sections)
    return inst.sections.get(sid) if sid is not None else None


def resolve_account(inst: Institution, ref: str) -> Account | None:
    if ref in ("self", "default"):
        return inst.accounts.get(inst.root_account_id)
    aid = _resolve(inst, "account", ref, inst.accounts)
    return inst.accounts.get(aid) if aid is not None else None
