"""The columnar decoder either gives exactly what rows.to_batch gives, or declines.

The reference is `to_batch(table, orjson.loads(body), ...)`, the path every page took before; the columnar
path is trusted only where it provably agrees. Hypothesis writes pages in every shape the reference meets
(ids as strings, floats, nulls, unknown keys present with null, escapes, odd whitespace, bodies that are not
JSON lists) and checks, page for page, that a batch the columnar path accepts equals the reference.
"""

from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from exporter.canvas.errors import BadResponse
from exporter.columnar import ColumnarDecoder, Decline, RawPage
from exporter.rows import SECTION_USERS, SECTIONS, Table, to_batch

CONTEXT = {"section_id": 7, "course_id": 3}

ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**15),
                 st.integers(2**63, 2**64 + 5), st.integers(-(2**64), -(2**63) - 1))
texts = st.text(max_size=12)
odd = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), ints, texts,
                st.just(1.0), st.just(-0.0))
stamps = st.one_of(st.sampled_from(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00+05:30", "2026-01-05T10:00:00",
                                    "2026-01-05T10:00:00.123456Z", "2026-01-05T10:00:00.1234567Z", "2026-01-05",
                                    "2026-13-05T10:00:00Z", "not a time", "2026-01-05t10:00:00z"]),
                   odd)
UNKNOWN_NAMES = ["sis_import_id", "x", "last_login", "a-b", "sis_import_id\x01", "i", "email2"]
unknown_values = st.one_of(st.none(), st.booleans(), ints, texts, st.just("2026-01-05T10:00:00Z"),
                           st.floats(allow_nan=False, allow_infinity=False),
                           st.dictionaries(st.sampled_from(["y", "sis_import_id"]), st.one_of(st.none(), ints),
                                           max_size=2),
                           st.lists(ints, max_size=2))


def _value(table: Table, key: str) -> st.SearchStrategy:
    column = next(c for c in table.plan if c.json_key == key and c.kind == "json")
    if column.is_timestamp:
        return stamps
    if column.type == pa.int64():
        return st.one_of(ints, ints.map(str), odd)
    if column.type == pa.bool_():
        return st.one_of(st.booleans(), st.sampled_from(["true", "false"]), odd)
    return st.one_of(texts, odd)


@st.composite
def items(draw: st.DrawFn, table: Table) -> dict:
    item: dict = {}
    for key in sorted(table.known_json_keys):
        roll = draw(st.integers(0, 19))
        if roll >= 3:  # usually there, as Canvas sends it; sometimes absent, sometimes anything at all
            item[key] = _plain(table, key, draw) if roll >= 5 else draw(_value(table, key))
    for name in draw(st.lists(st.sampled_from(UNKNOWN_NAMES), max_size=3, unique=True)):
        item[name] = draw(unknown_values)
    return item


def _plain(table: Table, key: str, draw: st.DrawFn):
    """A value of the declared type, as Canvas sends it."""
    column = next(c for c in table.plan if c.json_key == key and c.kind == "json")
    if column.is_timestamp:
        return "2026-01-05T10:00:00Z"
    if column.type == pa.int64():
        return draw(st.integers(1, 2**62))
    if column.type == pa.bool_():
        return draw(st.booleans())
    return draw(st.one_of(st.none(), st.text(max_size=8)))


def _compact(value) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits: Python's json writes it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _serialize(value, style: str) -> bytes:
    if style == "orjson":
        return _compact(value)
    if style == "ascii":  # every non-ASCII character as \\uXXXX
        return json.dumps(value, separators=(",", ":")).encode()
    if style == "spaced":
        return json.dumps(value, ensure_ascii=False, separators=(", ", " : ")).encode()
    if style == "indented":
        return json.dumps(value, ensure_ascii=False, indent=1).encode()
    if style == "escaped-key":
        return _compact(value).replace(b'"sis_import_id"', b'"sis\\u005fimport_id"')
    raise AssertionError(style)


@st.composite
def bodies(draw: st.DrawFn, table: Table) -> bytes:
    style = draw(st.sampled_from(["orjson"] * 4 + ["ascii", "spaced", "indented", "escaped-key"]))
    shape = draw(st.integers(0, 19))
    if shape == 0:  # not a list of objects
        return _serialize(draw(st.one_of(st.dictionaries(texts, ints, max_size=2), st.lists(ints, max_size=2),
                                         ints)), style)
    if shape == 1:  # a body that closes the wrapper and opens another line
        return b'[]} {"i":[' + _compact(draw(items(table))) + b"]"
    if shape == 2:
        return draw(st.sampled_from([b'[], "z": 5', b"null", b" null ", b"[null]", b"[[]]"]))
    if shape == 3:
        return b'[{"id":1,"name":"a\xffb","course_id":2}]'  # not UTF-8
    return _serialize(draw(st.lists(items(table), max_size=5)), style)


def _reference(table: Table, body: bytes) -> pa.RecordBatch | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(parsed) is not list or any(type(i) is not dict for i in parsed):
        return None
    try:
        return to_batch(table, parsed, "/p", CONTEXT if table.context else None)
    except BadResponse:
        return None


def _event(what: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics: how many batches each way
        event(what)


def _check(decoder: ColumnarDecoder, table: Table, batch: list[bytes]) -> bool:
    """True when the columnar path took the batch (and then it must agree with the reference)."""
    pages = [RawPage(b, "/p", CONTEXT if table.context else None) for b in batch]
    try:
        got = decoder.decode(table, pages)
    except (Decline, pa.ArrowException) as exc:
        _event(f"declined: {type(exc).__name__}")
        return False
    _event("taken")
    expected = [_reference(table, b) for b in batch]
    assert len(got) == len(batch)
    for body, mine, theirs in zip(batch, got, expected):
        assert theirs is not None, f"the columnar path accepted a page to_batch refuses: {body[:300]!r}"
        assert mine.equals(theirs), (body[:300], mine.to_pylist()[:2], theirs.to_pylist()[:2])
    return True


@pytest.mark.parametrize("table", [SECTION_USERS, SECTIONS], ids=lambda t: t.name)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_columnar_path_agrees_with_to_batch_or_declines(table: Table, data: st.DataObject) -> None:
    decoder = ColumnarDecoder()  # fresh: what it learns about null keys must not hide a difference
    for _ in range(3):  # a few batches in a row, as a crawl sends them
        _check(decoder, table, data.draw(st.lists(bodies(table), min_size=1, max_size=4)))


def _user(i: int, **extra) -> dict:
    return {"id": 1000 + i, "name": f"U{i}", "created_at": "2025-01-02T03:04:05Z", "sortable_name": f"U{i}",
            "short_name": f"U{i}", "sis_user_id": f"{i:06d}", "login_id": f"u{i}", "email": f"u{i}@x.edu", **extra}


def test_admin_pages_with_keys_present_as_null_are_taken_and_exact() -> None:
    """What an admin token gets: sis_import_id on some users, null on some, absent on others. The first batch
    teaches the decoder the key is sometimes null; every batch is then taken, equal to the reference."""
    decoder = ColumnarDecoder()
    page1 = orjson.dumps([_user(1, sis_import_id=5), _user(2, sis_import_id=None), _user(3)])
    page2 = orjson.dumps([_user(4), _user(5, sis_import_id=None, pronouns=None), _user(6, sis_import_id=7)])
    for batch in ([page1, page2], [page2], [page1]):
        assert _check(decoder, SECTION_USERS, batch)
    texts = decoder.decode(SECTION_USERS, [RawPage(page1, "/p", CONTEXT)])[0].column("unknown_fields")
    assert texts.to_pylist() == ['{"sis_import_id":5}', '{"sis_import_id":null}', None]


@pytest.mark.parametrize("body", [
    pytest.param(b'[{"id":1},{"id":2,"sis_import_id":null,"x":null}]', id="two keys null, a row with neither"),
    pytest.param(b'[{"id":1,"x":true,"y":"a b"},{"id":2,"y":""},{"id":3}]', id="bool and strings"),
    pytest.param(b'[{"id":1,"i":5},{"id":2,"i":null}]', id="an unknown key named like the line wrapper"),
    pytest.param(b'[{"id":1,"name":"\\u003cb\\u003e \\u0026"}]', id="Rails-style escapes"),
    pytest.param(b'[{"id":1,"name":"\\ud83d\\ude00 \\u00e9"}]', id="surrogate pair"),
])
def test_what_the_columnar_path_can_vouch_for_is_taken_and_exact(body: bytes) -> None:
    decoder = ColumnarDecoder()
    for _ in range(2):  # the first batch may teach it a key sent with null
        assert _check(decoder, SECTION_USERS, [body])


@pytest.mark.parametrize("body", [
    pytest.param(b'[{"id":1,"sis\\u005fimport_id":null}]', id="escaped key with null"),
    pytest.param(b'[{"id":1,"sis_import_id" :null}]', id="spaced key with null"),
    pytest.param(b'[{"id":1,"sis_import_id":null,"sis_import_id\\u0001":false}]', id="forged marker"),
    pytest.param(b'[{"id":1,"x":1.5}]', id="float unknown"),
    pytest.param(b'[{"id":1,"x":"2026-01-01T00:00:00Z"}]', id="timestamp-like unknown"),
    pytest.param(b'[{"id":1,"x":{"y":1}}]', id="nested unknown"),
    pytest.param(b'[{"id":1,"x":"say \\"hi\\""}]', id="unknown string to escape"),
    pytest.param(b'[]} {"i":[{"id":5}]', id="second line"),
    pytest.param(b'[], "z": 5', id="second key"),
    pytest.param(b'null', id="null, not a list"),
    pytest.param(b'[{"id":"12"}]', id="string id"),
    pytest.param(b'[{"id":1,"name":"a\xffb"}]', id="not UTF-8"),
])
def test_what_the_columnar_path_cannot_vouch_for_is_declined(body: bytes) -> None:
    decoder = ColumnarDecoder()
    decoder.decode(SECTION_USERS, [RawPage(_plain_page(), "/p", CONTEXT)])  # it works at all
    with pytest.raises((Decline, pa.ArrowException)):
        decoder.decode(SECTION_USERS, [RawPage(body, "/p", CONTEXT)])


def _plain_page() -> bytes:
    return orjson.dumps([_user(1, sis_import_id=None), _user(2)])
