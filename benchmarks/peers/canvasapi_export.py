"""Peer (a): the export as users write it today with canvasapi. Sequential, everything in memory.

    python benchmarks/peers/canvasapi_export.py --base-url URL --account self --out DIR --snapshot-id ID

Token from CANVAS_API_TOKEN. Account → courses → each course's sections → each section's users, pages
followed one by one by canvasapi's PaginatedList (per_page 100, its default), rows kept in lists, Parquet
written at the end with `pyarrow.Table.from_pylist`. canvasapi has no method for
`GET /sections/:id/users`, so that list is a PaginatedList built the way canvasapi builds its own.

Two things a user adds once bitten: canvasapi follows `next` for as long as Canvas sends one, and Canvas sends
one on an empty page past the end of a list whose total it does not know (a roster of exactly 100·k users),
so the script stops a list at an empty page (one patch of PaginatedList, below). And throttling: canvasapi raises `Forbidden` for Canvas's 403 "Rate Limit Exceeded" (and `RateLimitExceeded` for
429). Like a user who has hit that once, the script waits and carries on from the page that was refused
(a PaginatedList keeps the pages it has and its next URL), backing off 1, 2, 4 ... 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any, Callable, TypeVar

from canvasapi import Canvas
from canvasapi.account import Account
from canvasapi.exceptions import Forbidden, RateLimitExceeded
from canvasapi.paginated_list import PaginatedList
from canvasapi.user import User
from canvasapi.util import combine_kwargs

from peer_output import SECTION_COLUMNS, TIMESTAMP_COLUMNS, USER_COLUMNS, write_stats, write_table

T = TypeVar("T")


def _stop_at_empty_page(self: PaginatedList) -> list[Any]:
    content = _next_page(self)
    if not content:
        self._next_url = None
    return content


_next_page = PaginatedList._get_next_page
PaginatedList._get_next_page = _stop_at_empty_page  # type: ignore[method-assign]
stats = {"requests": 0, "retries": 0, "throttled": 0, "bytes": 0}


def throttled(exc: Exception) -> bool:
    return isinstance(exc, RateLimitExceeded) or "Rate Limit Exceeded" in str(exc)


def patiently(fetch: Callable[[], T]) -> T:
    """Call `fetch` again after a pause while Canvas says the rate limit is exceeded."""
    attempt = 0
    while True:
        try:
            return fetch()
        except (Forbidden, RateLimitExceeded) as exc:
            if not throttled(exc):
                raise
            stats["throttled"] += 1
            stats["retries"] += 1
            time.sleep(min(30, 2 ** attempt))
            attempt += 1


def fields(obj: Any, columns: list[str]) -> dict[str, Any]:
    """The columns from a canvasapi object (timestamps from the *_date datetimes canvasapi adds), and
    whatever else Canvas sent as a JSON text column."""
    row = {c: getattr(obj, f"{c}_date" if c in TIMESTAMP_COLUMNS else c, None) for c in columns}
    attrs = vars(obj)
    extra = {k: v for k, v in attrs.items()
             if not k.startswith("_") and k not in columns and k != "id"
             and not (k.endswith("_date") and k[:-5] in attrs)}
    row["unknown_fields"] = json.dumps(extra, sort_keys=True) if extra else None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description="Export sections and section users with canvasapi.")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account", default="self")
    parser.add_argument("--out", required=True)
    parser.add_argument("--snapshot-id", required=True)
    parser.add_argument("--stats", help="write request counts here as JSON")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # canvasapi warns about the simulator's plain http URL

    canvas = Canvas(args.base_url, os.environ["CANVAS_API_TOKEN"])
    requester = canvas._Canvas__requester  # type: ignore[attr-defined]

    def count(response: Any, *_: Any, **__: Any) -> None:  # benchmark instrumentation, not the user's code
        stats["requests"] += 1
        stats["bytes"] += len(response.content)

    requester._session.hooks["response"].append(count)

    # canvas.get_account() takes only an integer id (not "self" or an SIS ref) and the simulator does not
    # serve GET /api/v1/accounts/:id; listing courses needs nothing but the account's id, so build it.
    account = Account(requester, {"id": args.account})

    sections: list[dict[str, Any]] = []
    section_users: list[dict[str, Any]] = []
    courses = account.get_courses()
    for course in patiently(lambda: list(courses)):
        course_sections = course.get_sections(include=["total_students"])
        for section in patiently(lambda: list(course_sections)):
            sections.append({"id": section.id, **fields(section, SECTION_COLUMNS[1:])})
            users = PaginatedList(User, requester, "GET", f"sections/{section.id}/users",
                                  _kwargs=combine_kwargs(include=["avatar_url"]))
            for user in patiently(lambda: list(users)):
                section_users.append({"section_id": section.id, "course_id": section.course_id,
                                      "user_id": user.id, **fields(user, USER_COLUMNS)})

    write_table(args.out, "sections", args.snapshot_id, sections)
    write_table(args.out, "section_users", args.snapshot_id, section_users)
    write_stats(args.stats, {**stats, "rows_sections": len(sections), "rows_section_users": len(section_users)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
