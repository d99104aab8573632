"""Arrow schemas and JSON → columns normalization, one declaration per table.

Types come from these schemas, never from the data, so every file of a table has the same schema
whatever is null. A key missing from the JSON and a JSON null are both null. Ids are exact int64
(also when Canvas sends them as strings). Timestamps become UTC, whatever offset they carry; a
timestamp with no offset is taken as UTC. JSON keys the schema does not know are kept, per row, as a
JSON object in the `unknown_fields` text column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from itertools import repeat
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from exporter.canvas.errors import BadResponse
from exporter.canvas.links import path_of

TIMESTAMP = pa.timestamp("us", tz="UTC")
UNKNOWN_FIELDS = "unknown_fields"


_JSON, _CONTEXT, _UNKNOWN = "json", "context", "unknown"


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    kind: str  # _JSON (from the Canvas object), _CONTEXT (from the crawl) or _UNKNOWN (kept fields)
    json_key: str
    raw_index: int  # position in Table.raw_struct, for _JSON columns
    type: pa.DataType
    nullable: bool
    is_timestamp: bool


@dataclass(frozen=True, eq=False)
class Table:
    """One output table: its schema, its key, and where each column comes from."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    json_keys: Mapping[str, str]  # column -> key in the Canvas JSON object
    context: tuple[str, ...]  # columns filled from the crawl (not from the JSON)
    # Columns whose values are unique per user or per section (ids, logins, emails, creation times): Parquet
    # writes them plain. A dictionary for them fills up and is dropped partway through each column chunk;
    # building it cost about a third of a 64Ki-row group's encoding time and left the file 12 % larger.
    unique: tuple[str, ...] = ()

    @property
    def dictionary_columns(self) -> list[str]:
        """The columns Parquet dictionary-encodes: all but `unique`."""
        return [name for name in self.schema.names if name not in self.unique]

    @property
    def known_json_keys(self) -> frozenset[str]:
        return frozenset(self.json_keys.values())

    @cached_property
    def int_json_keys(self) -> tuple[str, ...]:
        return tuple(self.json_keys[f.name] for f in self.schema if f.name in self.json_keys and f.type == pa.int64())

    @cached_property
    def plan(self) -> tuple[_Column, ...]:
        """Where each schema column comes from, worked out once (to_batch runs for every page)."""
        raw_names = [f.name for f in self.schema if f.name in self.json_keys]
        out = []
        for f in self.schema:
            if f.name == UNKNOWN_FIELDS:
                kind, raw_index = _UNKNOWN, -1
            elif f.name in self.context:
                kind, raw_index = _CONTEXT, -1
            else:
                kind, raw_index = _JSON, raw_names.index(f.name)
            out.append(_Column(f.name, kind, self.json_keys.get(f.name, ""), raw_index, f.type, f.nullable,
                               f.type == TIMESTAMP))
        return tuple(out)

    @cached_property
    def raw_struct(self) -> pa.StructType:
        """The JSON objects as Arrow reads them: JSON key names, timestamps still text."""
        return pa.struct([pa.field(self.json_keys[f.name], pa.string() if f.type == TIMESTAMP else f.type)
                          for f in self.schema if f.name in self.json_keys])


def _schema(*fields: tuple[str, pa.DataType], nonnull: tuple[str, ...]) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=n not in nonnull) for n, t in fields]
                     + [pa.field(UNKNOWN_FIELDS, pa.string())])


SECTIONS = Table(
    name="sections",
    schema=_schema(
        ("id", pa.int64()), ("course_id", pa.int64()), ("name", pa.string()),
        ("sis_section_id", pa.string()), ("sis_course_id", pa.string()), ("integration_id", pa.string()),
        ("sis_import_id", pa.int64()), ("nonxlist_course_id", pa.int64()),
        ("start_at", TIMESTAMP), ("end_at", TIMESTAMP), ("created_at", TIMESTAMP),
        ("restrict_enrollments_to_section_dates", pa.bool_()), ("total_students", pa.int64()),
        nonnull=("id", "course_id"),
    ),
    key=("id",),
    json_keys={n: n for n in (
        "id", "course_id", "name", "sis_section_id", "sis_course_id", "integration_id", "sis_import_id",
        "nonxlist_course_id", "start_at", "end_at", "created_at", "restrict_enrollments_to_section_dates",
        "total_students")},
    context=(),
    unique=("id", "sis_section_id", "integration_id", "created_at"),
)

SECTION_USERS = Table(
    name="section_users",
    schema=_schema(
        ("section_id", pa.int64()), ("course_id", pa.int64()), ("user_id", pa.int64()),
        ("name", pa.string()), ("sortable_name", pa.string()), ("short_name", pa.string()),
        ("sis_user_id", pa.string()), ("integration_id", pa.string()), ("login_id", pa.string()),
        ("email", pa.string()), ("avatar_url", pa.string()), ("pronouns", pa.string()),
        ("created_at", TIMESTAMP),
        nonnull=("section_id", "course_id", "user_id"),
    ),
    key=("section_id", "user_id"),
    json_keys={"user_id": "id", **{n: n for n in (
        "name", "sortable_name", "short_name", "sis_user_id", "integration_id", "login_id", "email",
        "avatar_url", "pronouns", "created_at")}},
    context=("section_id", "course_id"),
    unique=("user_id", "sis_user_id", "integration_id", "login_id", "email", "created_at"),
)

TABLES = (SECTIONS, SECTION_USERS)


def to_batch(table: Table, items: Sequence[dict[str, Any]], where: str,
             context: Mapping[str, int] | None = None) -> pa.RecordBatch:
    """Normalize one page of Canvas JSON objects into a record batch of `table`'s schema.

    `where` is the page's URL (or path); only its path is ever shown, in the error of a page that cannot
    be typed. The fast path converts the whole page in one columnar step (Arrow reads the dicts as a
    struct: missing keys become null, timestamps are cast from their ISO text). If any value does not fit
    its declared type there, the page takes the slow path, which converts what can be converted exactly
    (ids sent as strings, timestamps without an offset) and raises BadResponse naming the path, item and
    field of what cannot.
    """
    n = len(items)
    parsed = None
    # Arrow would truncate a JSON number like 1.5 into an int64 column without a word: pages with a
    # float where an integer belongs take the slow path, which refuses it.
    int_keys = table.int_json_keys
    if not any(float in map(type, map(dict.get, items, repeat(k))) for k in int_keys):
        try:
            parsed = pa.array(items, type=table.raw_struct).flatten()
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            parsed = None
    arrays: list[pa.Array] = []
    for column in table.plan:
        if column.kind is _UNKNOWN:
            arrays.append(_unknown_fields(table, items))
        elif column.kind is _CONTEXT:
            arrays.append(pa.repeat(pa.scalar((context or {})[column.name], pa.int64()), n))
        else:
            array = _fast_column(parsed[column.raw_index], column) if parsed is not None else None
            if array is None:
                values = [item.get(column.json_key) for item in items]
                array = _column(values, column, where, table)
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=table.schema)


def from_struct(table: Table, fields: Sequence[pa.Array], context: Mapping[str, pa.Array],
                unknown: pa.Array) -> pa.RecordBatch | None:
    """The batch from rows Arrow has already parsed as `table.raw_struct` (its fields in order), the crawl's
    columns and the unknown_fields column; None when a value needs to_batch's exact, slow conversion."""
    arrays: list[pa.Array] = []
    for column in table.plan:
        if column.kind is _UNKNOWN:
            arrays.append(unknown)
        elif column.kind is _CONTEXT:
            arrays.append(context[column.name])
        else:
            array = _fast_column(fields[column.raw_index], column)
            if array is None:
                return None
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=table.schema)


def _fast_column(raw: pa.Array, column: _Column) -> pa.Array | None:
    """The column from the struct-parsed page, or None when the slow path must decide."""
    if not column.nullable and raw.null_count:
        return None
    if column.is_timestamp:
        try:
            cast = pc.call_function("cast", [raw], _TO_TIMESTAMP)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return cast if _readable(cast) else None
    return raw


_TO_TIMESTAMP = pc.CastOptions.safe(TIMESTAMP)
# The instants a reader can take back as a datetime (Python's, and so pyarrow's to_pylist): years 1 to 9999 in
# UTC. Arrow's cast takes a few more ("9999-12-31T23:59:59-05:00"); the exact way refuses them, and so do both.
_FIRST_US, _LAST_US = -62_135_596_800_000_000, 253_402_300_799_999_999


def _readable(timestamps: pa.Array) -> bool:
    if timestamps.null_count == len(timestamps):
        return True
    low, high = pc.min_max(timestamps.cast(pa.int64())).values()
    return _FIRST_US <= low.as_py() and high.as_py() <= _LAST_US


def _column(values: list[Any], column: _Column, where: str, table: Table) -> pa.Array:
    typ, key = column.type, column.json_key
    if not column.nullable:
        missing = next((i for i, v in enumerate(values) if v is None), None)
        if missing is not None:
            raise BadResponse(f"item {missing} has no {key!r} (absent or null)", path=path_of(where))
    try:
        if column.is_timestamp:
            cast = pa.array(values, pa.string()).cast(TIMESTAMP)
            if _readable(cast):
                return cast
        elif not (typ == pa.int64() and any(type(v) is float for v in values)):  # Arrow would truncate 1.5
            return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # the slow path below converts what can be converted exactly and names what cannot
    convert = _CONVERTERS[str(typ)]
    out = []
    for i, value in enumerate(values):
        try:
            out.append(None if value is None else convert(value))
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadResponse(f"item {i} field {key!r} is {shown_value(value)}: {exc}", path=path_of(where)) from None
    return pa.array(out, typ)


def shown_value(value: Any) -> str:
    """A bad value for an error message: short ones whole (so a secret echoed there is still recognised and
    redacted whole), long ones only described (never cut: a cut secret could not be recognised)."""
    text = orjson.dumps(value).decode("utf-8", "replace")
    if len(text) <= 32:
        return text
    return f"a JSON {type(value).__name__.replace('str', 'string').replace('dict', 'object')} of {len(text)} characters"


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean, not an integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and (digits := value.strip().lstrip("-")).isascii() and digits.isdigit():
        result = int(value)
    elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        result = int(value)
    elif isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
        # orjson reads an integer of more than 64 bits as a float
        raise OverflowError("outside the int64 range")
    else:
        raise TypeError("not an integer")
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise OverflowError("outside the int64 range")
    return result


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError("not a string")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise TypeError("not a boolean")


def _to_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not an ISO 8601 timestamp string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


_CONVERTERS = {
    str(pa.int64()): _to_int,
    str(pa.string()): _to_str,
    str(pa.bool_()): _to_bool,
    str(TIMESTAMP): _to_timestamp,
}


def _unknown_fields(table: Table, items: Sequence[dict[str, Any]]) -> pa.Array:
    extra_keys = sorted(set().union(*items) - table.known_json_keys)
    if not extra_keys:
        return pa.nulls(len(items), pa.string())
    dumps = orjson.dumps
    if len(extra_keys) == 1:  # the common case (e.g. sis_import_id for admins): no dict per row
        key = extra_keys[0]
        head = b"{" + dumps(key) + b":"
        return pa.array([head + dumps(item[key]) + b"}" if key in item else None for item in items], pa.string())
    out: list[bytes | None] = []
    for item in items:
        extra = {k: item[k] for k in extra_keys if k in item}
        out.append(dumps(extra) if extra else None)  # keys already sorted
    return pa.array(out, pa.string())


def empty_table(table: Table) -> pa.Table:
    return table.schema.empty_table()
