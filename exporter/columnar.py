"""Many pages of Canvas JSON to Arrow in one step, with Arrow's JSON reader, off the event loop.

`rows.to_batch` types one page from Python objects (orjson, then Arrow reading dicts): exact, but all of
it holds the GIL, so on the event loop's thread it competes with fetching. Here a batch of pages of one
table becomes one line each of an NDJSON buffer, `{"i":<page body>}`, which Arrow's JSON reader parses and
types in C++ with the GIL released, against the table's declared types.

The result must be exactly what `to_batch` makes of the same pages, so this path vouches only for what it
can prove and declines the rest (`Decline`); a declined batch goes through `to_batch`, which also writes the
error for a page that cannot be typed. Arrow's reader is stricter than `to_batch` (it refuses a float or a
string where an int64 belongs, a number where a string belongs, a key given twice, a bad escape), so a
refusal is a decline. What Arrow cannot tell apart by itself:

- A field the schema does not know, present with null, from one that is absent: `unknown_fields` keeps the
  former (`{"sis_import_id":null}`). Once a key has been seen with null, each `"key":null` in a body gets a
  marker field after it (`"key\\u0001":true`) before parsing; then, per key, the occurrences of `"key":` in
  the bodies must equal its non-null values plus its markers, or the batch is declined. A count can only
  miss a key written another way (`"key" :` or with escapes), and those bodies are declined too.
- An unknown field's JSON text: it is rebuilt only from int64, boolean and plain strings (no quote,
  backslash or control character to escape); floats, nested values and strings Arrow took for timestamps
  are declined.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from exporter.canvas.errors import BadResponse
from exporter.rows import Table, from_struct, to_batch

log = logging.getLogger("exporter.columnar")
_NAME = re.compile(r"[A-Za-z0-9_]+\Z")  # unknown keys this path writes; others are declined
# An escape that spells a name character or a control character (the marker's \u0001): a key written so
# would dodge the byte counts. Canvas's own escapes (\u003c, \u003e, \u0026) do not match.
_ESCAPED_NAME_CHAR = re.compile(rb"\\u00(?:[01][0-9a-fA-F]|3[0-9]|[4-7][0-9a-fA-F])")
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what orjson escapes in a string
_MARK = "\x01"
_MARK_JSON = "\\u0001"
_LINE_START = b'{"i":'
_LINE_BREAK = b'}\n{"i":'
_LINE_END = b"}\n"


class Decline(Exception):
    """This batch is not one the columnar path can vouch for; `to_batch` takes it."""


class _MarkAndRetry(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True, slots=True)
class RawPage:
    body: bytes  # one JSON list, as the server sent it (any `while(1);` prefix removed)
    where: str  # its URL, for errors
    context: Mapping[str, int] | None = None  # the crawl's columns for it (section_users: section and course)
    content_type: str = ""  # for the error of a body that is not JSON


class ColumnarDecoder:
    """Types batches of pages of one or more tables. Batches may be typed on several threads at once: the
    only state shared between them is the set of keys seen with null, which each attempt reads as a frozen
    copy and which only ever grows (a key added meanwhile costs at most one more parse)."""

    def __init__(self) -> None:
        self._null_keys: dict[str, set[str]] = {}  # per table: unknown keys seen present with null

    def decode(self, table: Table, pages: Sequence[RawPage]) -> list[pa.RecordBatch]:
        """One record batch per page, in order; raises Decline (or an Arrow error) for `to_batch` to take."""
        if not pages:
            return []
        # One line per page. Whole-buffer scans from here on (one pass each, not one call per page): the
        # line wrappers add no key but "i", and the marker text matches neither `"key":` nor `"key"`.
        lines = b"".join([_LINE_START, _LINE_BREAK.join([p.body for p in pages]), _LINE_END])
        if b"\\" in lines and _ESCAPED_NAME_CHAR.search(lines):
            raise Decline("an escaped name character")
        null_keys = self._null_keys.setdefault(table.name, set())
        while True:  # once more for each unknown key first seen here with null
            try:
                batch, offsets = self._attempt(table, pages, lines, frozenset(null_keys))
                break
            except _MarkAndRetry as found:
                null_keys.add(found.key)
        return [batch.slice(offsets[i], offsets[i + 1] - offsets[i]) for i in range(len(pages))]

    def _attempt(self, table: Table, pages: Sequence[RawPage], lines: bytes,
                 null_keys: frozenset[str]) -> tuple[pa.RecordBatch, list[int]]:
        marked = lines
        for key in null_keys:
            plain = f'"{key}":null'.encode()
            marked = marked.replace(plain, plain + f',"{key}{_MARK_JSON}":true'.encode())
        buffer = pa.py_buffer(marked)
        parsed = pj.read_json(
            pa.BufferReader(buffer),
            read_options=pj.ReadOptions(use_threads=False, block_size=buffer.size + 1),
            parse_options=pj.ParseOptions(explicit_schema=_line_schema(table), unexpected_field_behavior="infer"))
        if parsed.num_columns != 1 or parsed.num_rows != len(pages):
            raise Decline("a body is more than one JSON list")  # e.g. `[]} {"i":[...]`: not what orjson reads
        parsed.validate(full=True)  # Arrow's reader does not check UTF-8 itself
        lists = parsed.column(0).combine_chunks()
        if lists.null_count:  # `null`, not a list: the reference way says what it is instead
            raise Decline("a body that is not a JSON list")
        struct = lists.flatten()
        fields = struct.flatten()
        known = table.raw_struct.num_fields
        unknown: list[tuple[str, pa.Array]] = []
        marks: dict[str, pa.Array] = {}
        for i in range(known, struct.type.num_fields):
            name = struct.type.field(i).name
            if name.endswith(_MARK):
                marks[name[:-1]] = fields[i]
            else:
                unknown.append((name, fields[i]))
        texts = _unknown_fields(unknown, marks, lines, len(pages), len(struct), null_keys)
        context: dict[str, pa.Array] = {}
        if table.context:
            rows_page = lists.value_parent_indices()
            for name in table.context:
                values = pa.array([(p.context or {})[name] for p in pages], pa.int64())
                context[name] = values.take(rows_page)
        batch = from_struct(table, fields[:known], context, texts)
        if batch is None:
            raise Decline("a value needs to_batch's exact conversion")
        return batch, lists.offsets.to_pylist()


@functools.cache  # one per table (tables are module constants, hashed by identity)
def _line_schema(table: Table) -> pa.Schema:
    return pa.schema([("i", pa.list_(table.raw_struct))])


def _unknown_fields(unknown: list[tuple[str, pa.Array]], marks: dict[str, pa.Array], lines: bytes,
                    pages: int, rows: int, null_keys: frozenset[str]) -> pa.Array:
    """The unknown_fields column, exactly as to_batch writes it (`null_keys`: the keys marked)."""
    if set(marks) - {name for name, _ in unknown}:
        raise Decline("a marker with no key")
    parts = []
    for name, values in sorted(unknown):
        if not _NAME.match(name):
            raise Decline("an unknown key with characters to escape")
        quoted = f'"{name}"'.encode()
        wrappers = pages if name == "i" else 0  # each line's own `{"i":`
        as_key = lines.count(quoted + b":") - wrappers
        if lines.count(quoted) - wrappers != as_key:
            raise Decline("an unknown key also written other than as a compact key")
        mark = marks.get(name)
        present_null = 0
        if mark is not None:
            if not pa.types.is_boolean(mark.type) or mark.true_count != len(mark) - mark.null_count:
                raise Decline("a marker that is not ours")
            present_null = mark.true_count
        non_null = len(values) - values.null_count
        if as_key != non_null + present_null:
            if name not in null_keys and as_key > non_null:
                raise _MarkAndRetry(name)  # present with null somewhere: parse again with markers
            raise Decline("an unknown key whose presence cannot be counted")
        text = _json_text(values)
        if mark is not None:
            text = pc.if_else(pc.fill_null(mark, False), pa.scalar("null"), text)
        if text.null_count == len(text):
            continue
        parts.append(pc.binary_join_element_wise(f'"{name}":', text, ""))
    if not parts:
        return pa.nulls(rows, pa.string())
    if len(parts) == 1:
        joined = parts[0]
    else:  # keys sorted, absent ones skipped; a row with none of them stays null
        # (not null_handling="skip": in pyarrow 26 it drops rows whose values are all null)
        pieces = [pc.fill_null(pc.binary_join_element_wise(",", part, ""), "") for part in parts]
        joined = pc.binary_join_element_wise(*pieces, "")
        joined = pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()),
                            pc.utf8_slice_codeunits(joined, 1))
    return pc.binary_join_element_wise("{", joined, "}", "")


def _kind(kind: pa.DataType) -> str:
    """An Arrow type's family (timestamp, double, struct, list, ...): the manifest counts declines by it,
    and names and units from the server stay out of it."""
    return str(kind).split("[", 1)[0].split("<", 1)[0]


def _json_text(values: pa.Array) -> pa.Array:
    """Each value as orjson writes it (null where there is none)."""
    kind = values.type
    if pa.types.is_null(kind) or kind == pa.int64() or pa.types.is_boolean(kind):
        return values.cast(pa.string())
    if pa.types.is_string(kind):
        if pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
            raise Decline("an unknown field's text with characters to escape")
        return pc.binary_join_element_wise('"', values, '"', "")
    raise Decline(f"an unknown field of type {_kind(kind)}")


# -- on the event loop ---------------------------------------------------------------------------------------
_LEAD = object()  # a waiting job's turn to take the queue to the worker thread


def _told_to_lead(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None and future.result() is _LEAD


@dataclass(slots=True)
class _Job:
    table: Table
    page: RawPage
    future: asyncio.Future[Any]


@dataclass
class DecodeStats:
    columnar_pages: int = 0  # typed by Arrow's JSON reader in a batch
    reference_pages: int = 0  # typed by orjson and to_batch (the batch was declined)
    batches: int = 0
    declined: Counter[str] = field(default_factory=Counter)  # batches, by why

    def count(self, batches: list[tuple[int, str | None]]) -> None:
        """(pages, why the batch was declined or None) for each batch of one table."""
        for pages, why in batches:
            self.batches += 1
            if why is None:
                self.columnar_pages += pages
            else:
                self.reference_pages += pages
                self.declined[why] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"columnar_pages": self.columnar_pages, "reference_pages": self.reference_pages,
                "batches": self.batches, "declined": dict(sorted(self.declined.items()))}


class PageDecoder:
    """Pages typed on worker threads, many at a time: while a batch is being typed, the pages that arrive
    queue up and go together as the next batch; a page that arrives with a lane free goes at once.

    `parse(page)` is the reference way to the page's JSON objects (the client's, which names what is wrong
    with a body that is not a JSON list of objects); it and `to_batch` type a declined batch and write the
    error of a page that cannot be typed, as BadResponse. `run_sync(fn, *args)` runs a batch on a thread:
    anyio's thread pool unless given (the crawl gives its `ArrowThread`, with one lane)."""

    LANES = 2  # batches typed at once: while one is in the JSON reader (no GIL), the other can be set up

    def __init__(self, parse: Callable[[RawPage], list[dict[str, Any]]],
                 run_sync: Callable[..., Awaitable[Any]] | None = None, lanes: int | None = None) -> None:
        self._parse = parse
        self._run_sync = run_sync or anyio.to_thread.run_sync
        if lanes is not None:
            self.LANES = lanes
        self._columnar = ColumnarDecoder()
        self._queue: list[_Job] = []
        self._busy = 0  # batches on worker threads, and jobs told to take the queue
        self.stats = DecodeStats()

    async def decode(self, table: Table, page: RawPage) -> pa.RecordBatch:
        job = _Job(table, page, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        if self._busy < self.LANES:
            self._busy += 1
            jobs, self._queue = self._queue, []
        else:
            try:
                outcome = await job.future
            except BaseException:
                if _told_to_lead(job.future):
                    self._hand_over()  # told to lead just as it was cancelled: the next job leads instead
                raise
            if outcome is not _LEAD:
                return outcome
            jobs, self._queue = [job, *self._queue], []  # _hand_over took it off the queue
        with anyio.CancelScope(shield=True):  # the other jobs' results come from this batch: finish it
            try:
                results, declined = await self._run_sync(self._decode_all, jobs)
            except BaseException as exc:  # the thread could not run at all: every job of the batch says so
                results, declined = [exc] * len(jobs), []
        self.stats.count(declined)
        own: Any = None
        for each, result in zip(jobs, results):
            if each is job:
                own = result
            elif not each.future.done():
                if isinstance(result, BaseException):
                    each.future.set_exception(result)
                else:
                    each.future.set_result(result)
        self._hand_over()
        await anyio.lowlevel.checkpoint_if_cancelled()  # a cancel that came during the shield lands here
        if isinstance(own, BaseException):
            raise own
        return own

    def _hand_over(self) -> None:
        """A lane is free: the first job still waiting takes the queue to it, or the lane stays free."""
        while self._queue:
            first = self._queue.pop(0)
            if not first.future.done():  # else its task was cancelled while it waited
                first.future.set_result(_LEAD)
                return
        self._busy -= 1

    def _decode_all(self, jobs: list[_Job]) -> tuple[list[pa.RecordBatch | BaseException],
                                                     list[tuple[int, str | None]]]:
        """On a worker thread: each table's pages as one batch (`decode_pages`). Also says, per table,
        how many pages it had and why the columnar path declined them (None: it did not)."""
        results: list[pa.RecordBatch | BaseException | None] = [None] * len(jobs)
        by_table: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            by_table.setdefault(job.table.name, []).append(i)
        declined: list[tuple[int, str | None]] = []
        for indexes in by_table.values():
            table = jobs[indexes[0]].table
            batches, why = decode_pages(self._columnar, table, [jobs[i].page for i in indexes], self._parse)
            declined.append((len(indexes), why))
            for i, batch in zip(indexes, batches):
                results[i] = batch
        return results, declined  # type: ignore[return-value]


def decode_pages(columnar: ColumnarDecoder, table: Table, pages: Sequence[RawPage],
                 parse: Callable[[RawPage], list[dict[str, Any]]]) -> tuple[list[pa.RecordBatch | BaseException],
                                                                           str | None]:
    """Each page's record batch, or the BadResponse saying why it cannot be typed: the columnar path for
    all of them, or, where it declines, `parse` and `to_batch` page by page. Also why it declined, if it did."""
    try:
        return list(columnar.decode(table, pages)), None
    except Exception as exc:  # Decline, an Arrow refusal, or a fault here: the reference way decides
        if isinstance(exc, Decline):
            why = str(exc)
        elif isinstance(exc, pa.ArrowException):
            why = "refused by Arrow"
        else:  # a bug in this path; the reference way still gives the right rows
            why = f"unexpected {type(exc).__name__} in the columnar path"
            log.warning("columnar typing failed (%s: %s); these pages are typed the reference way",
                        type(exc).__name__, exc)
        return [_reference(table, page, parse) for page in pages], why


def _reference(table: Table, page: RawPage, parse: Callable[[RawPage], list[dict[str, Any]]]
               ) -> pa.RecordBatch | BaseException:
    try:
        return to_batch(table, parse(page), page.where, page.context)
    except BadResponse as exc:
        exc.status = 200  # the page came with 200; what it held could not be typed
        return exc
    except Exception as exc:  # noqa: BLE001 - handed to the page's own task, which raises it
        return exc
