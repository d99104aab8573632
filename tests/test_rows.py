from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pytest

from exporter.canvas.errors import BadResponse
from exporter.rows import SECTION_USERS, SECTIONS, TIMESTAMP, to_batch

UTC = timezone.utc


def test_schema_is_declared_not_inferred():
    all_null = to_batch(SECTIONS, [{"id": 1, "course_id": 2}], "/p")
    full = to_batch(SECTIONS, [{"id": 1, "course_id": 2, "name": "A", "start_at": "2026-01-01T00:00:00Z",
                                "restrict_enrollments_to_section_dates": True, "total_students": 3}], "/p")
    assert all_null.schema == full.schema == SECTIONS.schema
    assert SECTIONS.schema.field("start_at").type == TIMESTAMP
    assert SECTIONS.schema.field("total_students").type == pa.int64()


def test_missing_key_and_null_are_both_null():
    rows = to_batch(SECTIONS, [{"id": 1, "course_id": 2, "sis_section_id": None}, {"id": 2, "course_id": 2}],
                    "/p").to_pylist()
    assert rows[0]["sis_section_id"] is None and rows[1]["sis_section_id"] is None


def test_ids_exact_beyond_2_53_and_as_strings():
    big = 2**53 + 1
    rows = to_batch(SECTIONS, [{"id": big, "course_id": str(big + 2), "sis_import_id": "9007199254740995"}],
                    "/p").to_pylist()
    assert rows[0]["id"] == big and rows[0]["course_id"] == big + 2 and rows[0]["sis_import_id"] == big + 2


def test_sis_ids_keep_leading_zeros():
    row = to_batch(SECTIONS, [{"id": 1, "course_id": 2, "sis_section_id": "000123", "sis_course_id": "0042"}],
                   "/p").to_pylist()[0]
    assert row["sis_section_id"] == "000123" and row["sis_course_id"] == "0042"


@pytest.mark.parametrize("text,expected", [
    ("2026-06-01T06:00:00Z", datetime(2026, 6, 1, 6, tzinfo=UTC)),
    ("2026-06-01T08:00:00+02:00", datetime(2026, 6, 1, 6, tzinfo=UTC)),
    ("2026-05-31T23:30:00-06:30", datetime(2026, 6, 1, 6, tzinfo=UTC)),
    ("2026-06-01T06:00:00.250Z", datetime(2026, 6, 1, 6, 0, 0, 250000, tzinfo=UTC)),
    ("2026-06-01T06:00:00", datetime(2026, 6, 1, 6, tzinfo=UTC)),  # no offset: taken as UTC
])
def test_timestamps_become_utc(text, expected):
    row = to_batch(SECTIONS, [{"id": 1, "course_id": 2, "created_at": text}], "/p").to_pylist()[0]
    assert row["created_at"] == expected


def test_unknown_fields_are_kept_as_json():
    rows = to_batch(SECTIONS, [{"id": 1, "course_id": 2, "passback_status": {"sis_post_grades_status": None},
                                "permissions": {"manage_calendar": True}}, {"id": 2, "course_id": 2}],
                    "/p").to_pylist()
    assert orjson.loads(rows[0]["unknown_fields"]) == {"passback_status": {"sis_post_grades_status": None},
                                                      "permissions": {"manage_calendar": True}}
    assert rows[1]["unknown_fields"] is None


def test_section_users_take_context_and_map_id():
    rows = to_batch(SECTION_USERS, [{"id": 7, "name": "Zoë", "sortable_name": "Zoë", "short_name": "Z",
                                     "enrollments": [{"type": "StudentEnrollment"}]}], "/p",
                    {"section_id": 3, "course_id": 4}).to_pylist()
    assert rows[0]["section_id"] == 3 and rows[0]["course_id"] == 4 and rows[0]["user_id"] == 7
    assert rows[0]["name"] == "Zoë"
    assert orjson.loads(rows[0]["unknown_fields"]) == {"enrollments": [{"type": "StudentEnrollment"}]}


@pytest.mark.parametrize("values", [
    [10000000000517, 3, -4],                 # integers: written column-wise
    [10000000000517, "MISSING", 7],          # a key absent from one item: null there
    [10000000000517, None, 7],               # a key present with null: kept as null, not dropped
    [True, 1, "MISSING"],                    # a boolean is not an integer
    [2**63, 1, 2],                           # beyond int64
    ["0042", 1, 2],                          # a string needs JSON escaping
    [1.5, 2, 3],
])
def test_a_single_unknown_field_is_exactly_its_json(values):
    items = [{"id": i, "name": "U"} | ({} if v == "MISSING" else {"sis_import_id": v})
             for i, v in enumerate(values, 1)]
    rows = to_batch(SECTION_USERS, items, "/p", {"section_id": 1, "course_id": 2}).to_pylist()
    expected = [None if v == "MISSING" else orjson.dumps({"sis_import_id": v}).decode() for v in values]
    assert [r["unknown_fields"] for r in rows] == expected


@pytest.mark.parametrize("item,message", [
    ({"course_id": 2}, "item 0 has no 'id' (absent or null)"),
    ({"id": None, "course_id": 2}, "item 0 has no 'id' (absent or null)"),
    ({"id": "abc", "course_id": 2}, "item 0 field 'id' is \"abc\": not an integer"),
    ({"id": True, "course_id": 2}, "a boolean"),
    ({"id": 2**63, "course_id": 2}, "int64"),
    ({"id": 1e30, "course_id": 2}, "is 1e+30: outside the int64 range"),  # orjson's float for a 100-bit integer
    ({"id": "²", "course_id": 2}, "is \"²\": not an integer"),  # a digit to str.isdigit, none to int()
    ({"id": 1, "course_id": 2, "name": {"x": 1}}, "field 'name'"),
    ({"id": 1, "course_id": 2, "created_at": "yesterday"}, "field 'created_at'"),
    ({"id": 1, "course_id": 2, "restrict_enrollments_to_section_dates": "maybe"}, "not a boolean"),
])
def test_wrong_types_name_path_item_and_field(item, message):
    with pytest.raises(BadResponse) as info:
        to_batch(SECTIONS, [item], "/api/v1/courses/2/sections?page=3")
    assert message in str(info.value)
    assert info.value.path == "/api/v1/courses/2/sections?page=3"


def test_a_url_is_named_by_its_path_only():
    with pytest.raises(BadResponse) as info:
        to_batch(SECTIONS, [{"course_id": 2}], "https://user:pw@canvas.test/api/v1/courses/2/sections?access_token=s3cret")
    assert info.value.path == "/api/v1/courses/2/sections?access_token=[redacted]"
    assert "s3cret" not in str(info.value) and "pw" not in str(info.value)


def typed_either_way(path: str, items: list, context: dict) -> pa.RecordBatch:
    """One page typed by `to_batch`, or by the columnar path (which hands what it declines to `to_batch`)."""
    from exporter.columnar import ColumnarDecoder, RawPage, decode_pages

    if path == "to_batch":
        return to_batch(SECTION_USERS, items, "/p", context)
    [result], _ = decode_pages(ColumnarDecoder(), SECTION_USERS, [RawPage(orjson.dumps(items), "/p", context)],
                               lambda raw: orjson.loads(raw.body))
    if isinstance(result, Exception):
        raise result
    return result


@pytest.mark.parametrize("path", ["to_batch", "columnar"])
def test_timestamps_a_reader_cannot_take_back_are_refused_either_way(path):
    """Arrow's cast takes an instant past 9999-12-31 in UTC, which Python's datetime (and pyarrow's to_pylist)
    cannot hold; both ways of typing a page refuse it, naming it, and keep the last and first readable ones."""
    context = {"section_id": 1, "course_id": 2}
    edge = [{"id": 1, "created_at": "9999-12-31T23:59:59Z"}, {"id": 2, "created_at": "0001-01-01T00:00:00Z"}]
    past = [*edge, {"id": 3, "created_at": "9999-12-31T23:59:59-05:00"}]

    def typed(items):
        return typed_either_way(path, items, context)

    assert typed(edge).column("created_at").to_pylist() == [datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
                                                            datetime(1, 1, 1, tzinfo=timezone.utc)]
    with pytest.raises(BadResponse, match=r"item 2 field 'created_at' is \"9999-12-31T23:59:59-05:00\": date value"):
        typed(past)


@pytest.mark.parametrize("path", ["to_batch", "columnar"])
def test_a_whole_number_in_a_string_field_is_kept_as_its_digits(path):
    """Canvas may send a SIS id as a number on one page and a string on the next: the column stays a string,
    and the number is kept as its digits; a fraction is refused, naming the item and field."""
    context = {"section_id": 1, "course_id": 2}
    items = [{"id": 1, "sis_user_id": 12345}, {"id": 2, "sis_user_id": "007"}]

    def typed(page):
        return typed_either_way(path, page, context)

    assert typed(items).column("sis_user_id").to_pylist() == ["12345", "007"]
    with pytest.raises(BadResponse, match="item 0 field 'sis_user_id' is 1000.5: not a string"):
        typed([{"id": 1, "sis_user_id": 1000.5}])
