import pytest

from exporter.canvas.refs import RefError, Urls, account_ref, course_ref


@pytest.mark.parametrize("text,segment", [
    ("123", "123"),
    ("10000000000000123", "10000000000000123"),
    ("12~345", "12~345"),
    ("sis_course_id:MATH-101/F26", "sis_course_id:MATH-101%2FF26"),
    ("sis_course_id:007", "sis_course_id:007"),
    ("sis_course_id:CS 101.11é", "sis_course_id:CS%20101.11%C3%A9"),
    ("sis_course_id:50%+#?", "sis_course_id:50%25%2B%23%3F"),
    ("sis_integration_id:x", "sis_integration_id:x"),
    ("hex:sis_course_id:4d41", "hex:sis_course_id:4d41"),
])
def test_course_refs_encode_one_path_segment(text, segment):
    assert course_ref(text).segment == segment


@pytest.mark.parametrize("text", ["self", "1", "sis_account_id:ENG"])
def test_account_refs(text):
    assert account_ref(text).text == text


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("MATH-101", "neither a Canvas id"),
    ("sis_user_id:x", "unknown prefix"),
    ("sis_course_id:", "nothing after"),
    ("12345678901234567890", "neither"),  # 20 digits: beyond Canvas's id range
    ("self", "neither"),  # self names an account, not a course
    ("١٢", "neither"),  # Arabic-Indic digits are digits to \d, not to Canvas
])
def test_bad_course_refs_name_the_problem(text, message):
    with pytest.raises(RefError, match=message):
        course_ref(text)


def test_urls_keep_the_base_path():
    urls = Urls("https://x.test/canvas/")
    assert urls.course_sections(course_ref("sis_course_id:A/B")) == \
        "https://x.test/canvas/api/v1/courses/sis_course_id:A%2FB/sections"
    assert urls.section_users(5) == "https://x.test/canvas/api/v1/sections/5/users"
    assert urls.account_courses(account_ref("self")) == "https://x.test/canvas/api/v1/accounts/self/courses"
