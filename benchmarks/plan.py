"""The requests a perfect crawl of a simulated institution makes, and the bounds they imply.

Computed from the institution model with the simulator's paging rules (per_page 100 everywhere, the most
Canvas allows), never from what a crawler did, so a crawler that sends more requests than needed shows it.

- The account's course list has no known total: it is walked page after page, `len // 100 + 1` pages
  (a full last page is followed by an empty one).
- A course's section list knows its total: page 1, then the rest in parallel (depth 1 or 2).
- A section's user list has no known total either: `roster // 100 + 1` pages, one after another. The roster
  length counts test students, because the simulator drops them after cutting the page.

The longest chain is the deepest path: the account page that lists a course, that course's section list,
then the longest roster under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.sim import ADMIN, AccountScope, BucketParams, Institution
from exporter.sim.truth import courses_in_scope

PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class RequestPlan:
    courses: int
    sections: int
    account_pages: int
    section_pages: int
    user_pages: int
    chain: int  # pages that must be fetched one after another, at best

    @property
    def requests(self) -> int:
        return self.account_pages + self.section_pages + self.user_pages


def unknown_total_pages(length: int, per_page: int = PER_PAGE) -> int:
    return length // per_page + 1


def known_total_pages(length: int, per_page: int = PER_PAGE) -> int:
    return max(1, -(-length // per_page))


def request_plan(institution: Institution, account: str = "self") -> RequestPlan:
    courses = courses_in_scope(institution, AccountScope(account), ADMIN)
    section_pages = user_pages = sections = 0
    chain = unknown_total_pages(len(courses))  # an empty account still costs its page walk
    for index, course in enumerate(courses):
        listed_on = index // PER_PAGE + 1
        course_sections = institution.course_sections(course.id)
        pages = known_total_pages(len(course_sections))
        section_pages += pages
        sections += len(course_sections)
        depth = listed_on + (1 if pages == 1 else 2)
        longest = 0
        for section in course_sections:
            n = unknown_total_pages(len(institution.section_roster(section.id)))
            user_pages += n
            longest = max(longest, n)
        chain = max(chain, depth + longest)
    return RequestPlan(len(courses), sections, unknown_total_pages(len(courses)), section_pages, user_pages, chain)


def latency_bound(plan: RequestPlan, latency_s: float, concurrency: int) -> float:
    """No crawl with `concurrency` requests in flight finishes sooner."""
    return max(plan.requests * latency_s / concurrency, plan.chain * latency_s)


def throttle_bound(plan: RequestPlan, cost: float, bucket: BucketParams = BucketParams()) -> float:
    """Canvas's bucket leaks `outflow` per second; what it can hold before refusing is free at the start.

    A request is refused when the bucket, with the up-front charge added, reaches the high-water mark, so
    an empty bucket absorbs `hwm - up_front_cost` of cost before the first refusal.
    """
    room = bucket.hwm - bucket.up_front_cost
    return max(0.0, plan.requests * cost - room) / bucket.outflow


def cost_for_duration(plan: RequestPlan, seconds: float, bucket: BucketParams = BucketParams()) -> float:
    """The per-request cost that makes the throttle bound last `seconds`."""
    room = bucket.hwm - bucket.up_front_cost
    return round((seconds * bucket.outflow + room) / plan.requests, 4)
