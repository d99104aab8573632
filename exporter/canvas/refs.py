"""Course and account references (Canvas ids, SIS ids) and the one place that builds API URLs.

Canvas accepts an object's numeric id (up to 19 digits, optionally `shard~id`) or a prefixed reference
such as `sis_course_id:MATH-101/F26` in a path segment. The value after the prefix is percent-encoded
as one path segment (`/` becomes `%2F`), exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_NUMERIC = re.compile(r"\A[0-9]{1,19}\Z")  # ASCII digits only: \d would also take other scripts' digits
_SHARDED = re.compile(r"\A[0-9]{1,19}~[0-9]{1,19}\Z")
_HEX = re.compile(r"\Ahex:((?:sis|lti)_\w+):((?:[0-9A-Fa-f]{2})+)\Z")

COURSE_PREFIXES = ("sis_course_id", "sis_integration_id", "lti_context_id", "uuid")
ACCOUNT_PREFIXES = ("sis_account_id", "sis_integration_id", "lti_context_id", "uuid")
ACCOUNT_WORDS = ("self", "default", "site_admin")
SECTION_PREFIXES = ("sis_section_id", "sis_integration_id")


class RefError(ValueError):
    """A reference the user gave cannot name a Canvas object."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to one Canvas object, as the user wrote it and as it goes into a URL path."""

    kind: str  # "course", "account" or "section"
    text: str  # as the user wrote it, for messages and the manifest

    @property
    def segment(self) -> str:
        """The path segment, percent-encoded once."""
        if _NUMERIC.match(self.text) or _SHARDED.match(self.text) or self.text in ACCOUNT_WORDS:
            return self.text
        if self.text.startswith("hex:"):
            return self.text
        prefix, _, value = self.text.partition(":")
        return f"{prefix}:{quote(value, safe='')}"

    @property
    def numeric_id(self) -> int | None:
        return int(self.text) if _NUMERIC.match(self.text) else None


def _parse(text: str, kind: str, prefixes: tuple[str, ...], words: tuple[str, ...] = ()) -> Ref:
    raw = text.strip()
    if not raw:
        raise RefError(f"empty {kind} reference")
    if _NUMERIC.match(raw) or _SHARDED.match(raw) or raw in words:
        return Ref(kind, raw)
    hex_match = _HEX.match(raw)
    if hex_match:
        if hex_match.group(1) not in prefixes:
            raise RefError(f"{kind} reference {raw!r}: {hex_match.group(1)!r} does not name a {kind}")
        return Ref(kind, raw)
    prefix, sep, value = raw.partition(":")
    if not sep:
        hint = ", ".join(f"{p}:..." for p in prefixes)
        extra = f", {', '.join(words)}" if words else ""
        raise RefError(
            f"{kind} reference {raw!r} is neither a Canvas id (digits) nor a prefixed reference ({hint}{extra})"
        )
    if prefix not in prefixes:
        raise RefError(f"{kind} reference {raw!r}: unknown prefix {prefix!r}; expected one of {', '.join(prefixes)}")
    if not value:
        raise RefError(f"{kind} reference {raw!r} has nothing after {prefix!r}")
    # Keep the value exactly as written (leading zeros and spaces inside are significant to SIS).
    return Ref(kind, f"{prefix}:{value}")


def course_ref(text: str) -> Ref:
    return _parse(text, "course", COURSE_PREFIXES)


def listed_course_ref(value: object) -> Ref:
    """A course as a Canvas listing names it: by a JSON integer, or by a string of ASCII digits (Canvas's
    string ids). Anything else (a float, a boolean, an object, a path, a query) is refused, never put into
    the course's URL."""
    if type(value) is int:
        number = value
    elif type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        raise RefError("not a Canvas id (an integer, or a string of digits)")
    if not 0 < number < 2**63:
        raise RefError("not a Canvas id (outside 1 to 2^63-1)")
    return Ref("course", str(number))


def account_ref(text: str) -> Ref:
    return _parse(text, "account", ACCOUNT_PREFIXES, ACCOUNT_WORDS)


def section_ref(text: str) -> Ref:
    return _parse(text, "section", SECTION_PREFIXES)


class Urls:
    """Builds every API URL the exporter requests. The base URL's path prefix is kept."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def account_courses(self, account: Ref) -> str:
        return f"{self.base}/api/v1/accounts/{account.segment}/courses"

    def course_sections(self, course: Ref) -> str:
        return f"{self.base}/api/v1/courses/{course.segment}/sections"

    def section_users(self, section_id: int) -> str:
        return f"{self.base}/api/v1/sections/{section_id}/users"
