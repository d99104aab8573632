"""The fan-out: courses → sections → users, concurrently, with back-pressure.

    courses ──► course workers ──► section jobs ──► section workers
                     │  (a course's whole section list)        │ (a section's whole roster)
                     └──────────────► units ◄──────────────────┘
                                        │
                                   writer task ──► Snapshot (part files, journal)

Every stream is bounded, so a slow writer slows the fetchers and memory stays flat. Requests in flight
are limited once, globally, by the client's adaptive limit. A unit (one course's sections, one section's
users) reaches the writer only when every page of it has been fetched, so a unit is in a snapshot
completely or not at all; a failed unit is recorded and the crawl goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pyarrow as pa
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from exporter.arrow_thread import ArrowThread
from exporter.canvas.client import CanvasClient, Page
from exporter.canvas.errors import BadResponse, ItemFailed, PaginationError, RunAborted, unwrap_group
from exporter.canvas.links import path_of
from exporter.canvas.pages import iter_pages
from exporter.canvas.refs import Ref, RefError, Urls, listed_course_ref
from exporter.columnar import PageDecoder, RawPage
from exporter.config import CrawlConfig
from exporter.rows import SECTION_USERS, SECTIONS, Table, shown_value
from exporter.store.snapshot import Snapshot

log = logging.getLogger("exporter.crawl")


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    item: str
    path: str
    status: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "item": self.item, "path": self.path, "status": self.status,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CourseTask:
    ref: Ref
    recheck: bool = False  # the second look, after every course was listed once: only new sections count


@dataclass(frozen=True, slots=True)
class SectionJob:
    section_id: int
    course_id: int
    expected_users: int | None = None  # the section's total_students, when asked for: sizes the look-ahead


@dataclass(frozen=True, slots=True)
class Unit:
    table: Table
    key: Any  # what the journal records; see ResumeState
    batches: list[pa.RecordBatch]
    rows: int


@dataclass
class Progress:
    """Counters the CLI shows while the crawl runs."""

    started: float = field(default_factory=time.monotonic)
    courses_total: int | None = None
    courses_done: int = 0
    sections_found: int = 0
    sections_done: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {SECTIONS.name: 0, SECTION_USERS.name: 0})
    duplicates_dropped: int = 0
    lists_walked_again: int = 0  # lists that shifted while their pages were fetched at once
    failures: list[Failure] = field(default_factory=list)


@dataclass
class ResumeState:
    """What an interrupted run of the same snapshot already wrote durably (from the journal)."""

    done_courses: set[str] = field(default_factory=set)
    done_sections: set[int] = field(default_factory=set)
    sections_of_done_courses: list[SectionJob] = field(default_factory=list)

    @classmethod
    def from_journal(cls, entries: list[dict[str, Any]]) -> ResumeState:
        state = cls()
        for entry in entries:
            for unit in entry["units"]:
                if entry["table"] == SECTIONS.name:
                    if "course" in unit:  # a recheck unit adds sections but does not finish a course
                        state.done_courses.add(unit["course"])
                    # [section, course] or, since the look-ahead hint is journaled too, [section, course, n]
                    state.sections_of_done_courses += [SectionJob(*entry[:3]) for entry in unit["sections"]]
                else:
                    state.done_sections.add(int(unit))
        return state


async def _put(stream: ObjectSendStream[Any], item: Any) -> None:
    """Send without a trip round the event loop when the stream has room (anyio's send always makes one)."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def _items(stream: ObjectReceiveStream[Any]) -> AsyncIterator[Any]:
    """A stream's items, taken without a trip round the event loop while some are waiting."""
    while True:
        try:
            item = stream.receive_nowait()
        except anyio.WouldBlock:
            try:
                item = await stream.receive()
            except anyio.EndOfStream:
                return
        except anyio.EndOfStream:
            return
        yield item


def _listed_course(item: dict[str, Any], index: int, page_url: str) -> Ref:
    """The course an item of an account's course listing names. Its id goes into URLs, so only a real
    Canvas id is taken: a hostile or broken server must not make us request a path or query of its choice."""
    course_id = item.get("id")
    if course_id is None:
        raise BadResponse(f"item {index} has no id (absent or null)", path=path_of(page_url), status=200)
    try:
        return listed_course_ref(course_id)
    except RefError as exc:
        raise BadResponse(f"item {index} has id {shown_value(course_id)}: {exc}", path=path_of(page_url),
                          status=200) from None


class _StalePages:
    """A list whose pages keep bringing only rows it already has is going round in circles under URLs that
    never repeat; a few such pages in a row end it as an error instead of a crawl without end."""

    LIMIT = 3

    def __init__(self) -> None:
        self.in_a_row = 0

    def check(self, page: Page, fresh: pa.RecordBatch) -> None:
        if not page.item_count:  # an empty page neither repeats rows nor brings new ones: it breaks no run
            return
        self.in_a_row = self.in_a_row + 1 if not fresh.num_rows else 0
        if self.in_a_row >= self.LIMIT:
            raise PaginationError(f"{self.LIMIT} pages in a row brought only rows already listed; the next "
                                  "links do not lead to the end of the list", path=path_of(page.url), status=200)


class Crawler:
    WRITE_BACKLOG = 4  # row groups buffered for a table while its last one is written

    def __init__(self, config: CrawlConfig, client: CanvasClient, snapshot: Snapshot, arrow: ArrowThread,
                 resume: ResumeState | None = None, progress: Progress | None = None) -> None:
        self.config = config
        self.client = client
        self.snapshot = snapshot
        self.resume = resume or ResumeState()
        self.progress = progress or Progress()
        self.urls = Urls(config.client.base_url)
        self.arrow = arrow  # pages are typed and Parquet is encoded on this one thread
        self.decoder = PageDecoder(lambda page: client.parse_list(page.body, page.content_type, page.where),
                                   self.arrow.run_sync, lanes=1)
        self.per_page = config.client.per_page
        # Sections already in the snapshot, by id: a section listed under two courses (cross-listed
        # while we crawl) is written once, under the course that listed it first.
        self.claimed_sections: set[int] = {j.section_id for j in self.resume.sections_of_done_courses}
        n = config.client.concurrency
        self._listed: list[Ref] = []  # courses listed once, in order: the recheck lists them again
        self._first_pass_left = 0
        self._offering_done = False
        self._first_pass_done = anyio.Event()
        self.course_workers = max(2, n // 2)
        # Twice the request limit: a worker whose page is being typed holds no request slot, and another
        # worker's request takes it (measured: 8.4 s -> 6.4 s on the cpu benchmark).
        self.section_workers = max(2, 2 * n)

    # -- the pipeline ----------------------------------------------------------------------------------
    async def run(self) -> Progress:
        n = self.config.client.concurrency
        course_send, course_recv = anyio.create_memory_object_stream[CourseTask](n)
        job_send, job_recv = anyio.create_memory_object_stream[SectionJob](2 * n)
        unit_send, unit_recv = anyio.create_memory_object_stream[Unit](8)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, unit_recv)
                async with course_send, job_send, unit_send:
                    tg.start_soon(self._produce_courses, course_send.clone(), job_send.clone())
                    for _ in range(self.course_workers):
                        tg.start_soon(self._course_worker, course_recv.clone(), job_send.clone(),
                                      unit_send.clone())
                    for _ in range(self.section_workers):
                        tg.start_soon(self._section_worker, job_recv.clone(), unit_send.clone())
                course_recv.close()
                job_recv.close()
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None
        return self.progress

    async def _produce_courses(self, courses: ObjectSendStream[CourseTask],
                               jobs: ObjectSendStream[SectionJob]) -> None:
        async with courses, jobs:
            await self._first_pass(courses, jobs)
            if not self.config.recheck:
                return
            # A section cross-listed while we crawl can leave a course we had not listed yet for one we had
            # listed already. Once every course has been listed, list them all again: any section not yet
            # in the snapshot is taken from where it is now.
            self._offering_done = True
            if self._first_pass_left:
                await self._first_pass_done.wait()
            for ref in list(self._listed):
                await _put(courses, CourseTask(ref, recheck=True))

    async def _first_pass(self, courses: ObjectSendStream[CourseTask], jobs: ObjectSendStream[SectionJob]) -> None:
        # Rosters of sections whose course list is already durable but whose users are not.
        for job in self.resume.sections_of_done_courses:
            self.progress.sections_found += 1
            if job.section_id in self.resume.done_sections:
                self.progress.sections_done += 1
            else:
                await _put(jobs, job)
        scope = self.config.scope
        if scope.account is None:
            self.progress.courses_total = len(scope.courses)
            for ref in scope.courses:
                await self._offer_course(ref, courses)
            return
        offered: set[str] = set()
        item = f"course listing of account {scope.account.text}"
        bad: list[BadResponse] = []  # unusable items of the listing that is kept
        try:
            if await self._list_account(courses, offered, bad, ahead=True):
                # A course listed twice: the listing shifted while its pages were fetched at once, so a page
                # answered before the shift may have missed one. Listed again page by page, an addition can
                # only repeat a course; those not yet offered are offered now.
                self.progress.lists_walked_again += 1
                log.info("account %s: its course listing shifted while it was fetched; listing it again page "
                         "by page", scope.account.text)
                bad.clear()  # the second listing says which items are unusable
                await self._list_account(courses, offered, bad, ahead=False)
        except ItemFailed as exc:
            # A later page of the listing failed (the first one failing stops the run: no scope is known).
            # The courses listed so far are exported; the snapshot says it is partial, and why.
            self._record(item, exc)
        finally:
            for exc in bad:
                self._record(item, exc)
        self.progress.courses_total = len(offered)

    async def _list_account(self, courses: ObjectSendStream[CourseTask], offered: set[str], bad: list[BadResponse],
                            ahead: bool) -> bool:
        """Offer each course of the account's listing not offered yet, and add its unusable items to `bad`;
        True if the listing repeated a course."""
        account = self.config.scope.account
        assert account is not None
        params = [("per_page", str(self.per_page))]
        repeated = False
        async for page in self._pages(self.urls.account_courses(account), params, what=f"account {account.text}",
                                      first_is_fatal=ahead, ahead=ahead):
            for i, course in enumerate(page.items):
                try:
                    ref = _listed_course(course, i, page.url)
                except BadResponse as exc:
                    bad.append(exc)
                    continue
                if ref.text in offered:
                    repeated = True
                    continue
                offered.add(ref.text)
                await self._offer_course(ref, courses)
        return repeated

    async def _offer_course(self, ref: Ref, courses: ObjectSendStream[CourseTask]) -> None:
        if ref.text in self.resume.done_courses:
            self.progress.courses_done += 1
            self._listed.append(ref)
        else:
            self._first_pass_left += 1
            await _put(courses, CourseTask(ref))

    async def _course_worker(self, courses: ObjectReceiveStream[CourseTask], jobs: ObjectSendStream[SectionJob],
                             units: ObjectSendStream[Unit]) -> None:
        async with courses, jobs, units:
            async for task in _items(courses):
                ref = task.ref
                try:
                    unit, new_jobs = await self._course_sections(ref, task.recheck)
                except ItemFailed as exc:
                    if not task.recheck:
                        self._record(f"course {ref.text}", exc)
                    else:  # the first pass of this course succeeded: what is missed here is only a move
                        self._record(f"recheck of course {ref.text}", exc)
                else:
                    if unit.rows or not task.recheck:
                        await _put(units, unit)
                    for job in new_jobs:
                        await _put(jobs, job)
                    if not task.recheck:
                        self._listed.append(ref)
                if not task.recheck:
                    self.progress.courses_done += 1
                    self._first_pass_left -= 1
                    if self._offering_done and not self._first_pass_left:
                        self._first_pass_done.set()

    async def _course_sections(self, ref: Ref, recheck: bool = False) -> tuple[Unit, list[SectionJob]]:
        """Every section listed under one course, minus any already claimed by another course."""
        params = [("per_page", str(self.per_page))] + [("include[]", i) for i in self.config.section_includes]
        batches: list[pa.RecordBatch] = []
        seen: set[int] = set()
        stale = _StalePages()
        async for page in self._pages(self.urls.course_sections(ref), params, what=f"course {ref.text}",
                                      convert=partial(self._decode, SECTIONS, None)):
            batch = self._keep_new(page.data, "id", seen, count=not recheck)
            stale.check(page, batch)
            if batch.num_rows:
                batches.append(batch)
        table = pa.Table.from_batches(batches, schema=SECTIONS.schema)
        ids = table.column("id").to_pylist()
        fresh = [i not in self.claimed_sections for i in ids]
        if not all(fresh):
            if not recheck:  # on the recheck, sections already taken are expected, not duplicates
                self.progress.duplicates_dropped += fresh.count(False)
            if any(fresh):
                table = table.filter(pa.array(fresh))
                batches = table.to_batches()
                ids = table.column("id").to_pylist()
            else:  # the recheck's usual answer: nothing new
                table, batches, ids = table.slice(0, 0), [], []
        self.claimed_sections.update(ids)
        jobs = [SectionJob(s, c, n) for s, c, n in zip(ids, table.column("course_id").to_pylist(),
                                                       table.column("total_students").to_pylist())]
        self.progress.sections_found += len(jobs)
        key = "recheck" if recheck else "course"
        unit = Unit(SECTIONS, {key: ref.text, "sections": [[j.section_id, j.course_id, j.expected_users]
                                                            for j in jobs]},
                    batches, len(ids))
        todo = [j for j in jobs if j.section_id not in self.resume.done_sections]
        self.progress.sections_done += len(jobs) - len(todo)  # rosters made durable by the run resumed
        return unit, todo

    async def _section_worker(self, jobs: ObjectReceiveStream[SectionJob], units: ObjectSendStream[Unit]) -> None:
        async with jobs, units:
            async for job in _items(jobs):
                try:
                    unit = await self._section_users(job)
                except ItemFailed as exc:
                    self._record(f"section {job.section_id}", exc)
                else:
                    await _put(units, unit)
                self.progress.sections_done += 1

    async def _section_users(self, job: SectionJob) -> Unit:
        unit, repeated, pages = await self._roster(job, ahead=True)
        if repeated and pages > 1:
            # A row on two pages: the roster shifted while it was paged (someone added). Its pages were
            # fetched at once, so one answered before the shift may also have missed a row. Walked again one
            # page at a time, an addition can only repeat a row (README: what is not caught).
            self.progress.lists_walked_again += 1
            log.info("section %s: its roster shifted while it was fetched; fetching it again page by page",
                     job.section_id)
            unit, repeated, _ = await self._roster(job, ahead=False)
        self.progress.duplicates_dropped += repeated
        return unit

    async def _roster(self, job: SectionJob, ahead: bool) -> tuple[Unit, int, int]:
        """A section's roster as a unit, the rows dropped as repeats, and the pages it took."""
        params = [("per_page", str(self.per_page))] + [("include[]", i) for i in self.config.user_includes]
        context = {"section_id": job.section_id, "course_id": job.course_id}
        batches: list[pa.RecordBatch] = []
        seen: set[int] = set()
        rows = repeated = pages = 0
        stale = _StalePages()
        async for page in self._pages(self.urls.section_users(job.section_id), params,
                                      what=f"section {job.section_id}", expected_items=job.expected_users,
                                      convert=partial(self._decode, SECTION_USERS, context), ahead=ahead):
            pages += 1
            batch = self._keep_new(page.data, "user_id", seen, count=False)
            repeated += page.data.num_rows - batch.num_rows
            stale.check(page, batch)
            if batch.num_rows:
                batches.append(batch)
                rows += batch.num_rows
        return Unit(SECTION_USERS, job.section_id, batches, rows), repeated, pages

    async def _writer(self, units: ObjectReceiveStream[Unit]) -> None:
        """Units into the snapshot. Parquet is written on a worker thread while more units are taken in;
        a table whose writing falls behind by several row groups holds the crawl back until it catches up."""
        writing: dict[str, anyio.Event] = {}  # table name -> set when its write-out has ended
        async with units, anyio.create_task_group() as tg:
            async for unit in _items(units):
                name = unit.table.name
                if name in writing and self.snapshot.backlog(unit.table) >= self.WRITE_BACKLOG:
                    await writing[name].wait()
                if self.snapshot.add(unit.table, unit.key, unit.batches) and name not in writing:
                    writing[name] = anyio.Event()
                    tg.start_soon(self._write_out, unit.table, writing)
                self.progress.rows[name] += unit.rows

    async def _write_out(self, table: Table, writing: dict[str, anyio.Event]) -> None:
        try:
            while self.snapshot.due(table):
                chunk = self.snapshot.take(table)
                close = self.snapshot.closes_after(table, chunk)
                if close and table is SECTION_USERS:
                    # Rosters are journaled only after their sections' rows: a resume skips a journaled
                    # roster, and one whose section row was not durable could name a course its section no
                    # longer has (cross-listed) or none (deleted) once that section is listed again. A
                    # section's unit reaches the snapshot before any roster of it (the units stream is FIFO);
                    # chunks run on the Arrow thread in the order taken.
                    await self.arrow.run_sync(self.snapshot.write, SECTIONS, self.snapshot.take(SECTIONS), True)
                await self.arrow.run_sync(self.snapshot.write, table, chunk, close)
        except OSError as exc:
            raise RunAborted(f"cannot write the snapshot to {self.snapshot.root}: {exc}") from exc
        finally:
            writing.pop(table.name).set()

    # -- pagination --------------------------------------------------------------------------------------
    async def _pages(self, url: str, params: list[tuple[str, str]], *, what: str,
                     expected_items: int | None = None, first_is_fatal: bool = False,
                     convert: Callable[[Page], Awaitable[Any]] | None = None,
                     ahead: bool = True) -> AsyncIterator[Page]:
        pages = iter_pages(self.client, url, params, per_page=self.per_page, expected_items=expected_items,
                           convert=convert, ahead=ahead)
        first = True
        try:
            async for page in pages:
                first = False
                yield page
        except ItemFailed as exc:
            if first and first_is_fatal:
                raise RunAborted(f"cannot list {what}: {exc.reason}", path=exc.path, status=exc.status) from exc
            raise
        finally:
            await pages.aclose()

    async def _decode(self, table: Table, context: dict[str, int] | None, page: Page) -> pa.RecordBatch:
        return await self.decoder.decode(table, RawPage(page.body, page.url, context, page.content_type))

    # -- helpers -----------------------------------------------------------------------------------------
    def _keep_new(self, batch: pa.RecordBatch, key: str, seen: set[int], count: bool = True) -> pa.RecordBatch:
        """Drop rows whose key this unit already has (a row repeated across pages as the list shifted)."""
        ids = batch.column(key).to_pylist()
        if seen.isdisjoint(ids) and len(set(ids)) == len(ids):  # the usual page: nothing seen before
            seen.update(ids)
            return batch
        fresh = []
        for i in ids:
            fresh.append(i not in seen)
            seen.add(i)
        if count:
            self.progress.duplicates_dropped += fresh.count(False)
        return batch.filter(pa.array(fresh))

    def _record(self, item: str, exc: ItemFailed) -> None:
        redact = self.client.redact  # a hostile server may echo the token into anything it sends
        failure = Failure(exc.kind, item, redact(exc.path), exc.status, redact(exc.reason))
        self.progress.failures.append(failure)
        log.warning("%s failed: %s", item, redact(exc.describe()))
