"""One small tree of exceptions, named for what the caller must do.

    CanvasError
    ├── RunAborted          stop the whole run: nothing more can succeed (bad token, host unreachable)
    │   └── InvalidToken
    └── ItemFailed          record this item in the manifest and carry on with the others
        ├── NotFound            404: missing or deleted
        ├── Forbidden           401/403 that refuses permission (not a throttle)
        ├── BadResponse         the server answered, but not with what the API promises
        ├── PaginationError     the Link chain is unsafe to follow (cycle, foreign host)
        └── RetriesExhausted    transient faults outlasted the retry budget

Every message names the URL path (never the host's credentials, never the token) and what was wrong.
"""

from __future__ import annotations


class CanvasError(Exception):
    """Base of every error this package raises about Canvas."""

    def __init__(self, reason: str, *, path: str = "", status: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.status = status
        self.staged_as: str | None = None  # set by export(): the snapshot left staged, to resume
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"{self.path}: " if self.path else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        return f"{where}{status}{self.reason}"


class RunAborted(CanvasError):
    """Nothing more in this run can succeed; stop and commit nothing new."""


class InvalidToken(RunAborted):
    """Canvas refused the token itself (401 with WWW-Authenticate)."""


class ItemFailed(CanvasError):
    """This item (a course, a section) could not be exported; the run goes on."""

    kind = "failed"


class NotFound(ItemFailed):
    kind = "not_found"


class Forbidden(ItemFailed):
    kind = "forbidden"


class BadResponse(ItemFailed):
    kind = "bad_response"


class PaginationError(ItemFailed):
    kind = "bad_pagination"


class RetriesExhausted(ItemFailed):
    kind = "retries_exhausted"


def unwrap_group(group: BaseExceptionGroup) -> BaseException:
    """The exception that matters in a task group's failure: a run-stopping one first, then any other
    that is not a cancellation (cancellations are the echo of the first failure in sibling tasks)."""
    import anyio

    flat: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else flat.append(e)

    walk(group)
    cancelled = anyio.get_cancelled_exc_class()
    for wanted in (RunAborted, Exception):
        for e in flat:
            if isinstance(e, wanted) and not isinstance(e, cancelled):
                return e
    return flat[0]
