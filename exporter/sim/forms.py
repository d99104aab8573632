"""Request parameters of the write endpoints, read the way Rails reads them.

- Form bodies and query strings use Rack's nested keys: `course_section[name]=A` becomes
  `{"course_section": {"name": "A"}}`, `k[]=a&k[]=b` a list.
- A JSON object body gives its values as they are (true stays a boolean, null stays None).
- Rails merges the two with the query string winning (`request_parameters.merge(query_parameters)`).
- Values reach the model through Rails' typecasts: `rails_boolean`, `rails_string`, `parse_time`; and
  controller flags through Canvas's `value_to_boolean`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl

import orjson

_KEY = re.compile(r"\A([^\[\]]+)((?:\[[^\[\]]*\])*)\Z")
_PART = re.compile(r"\[([^\[\]]*)\]")
_FALSE_VALUES = frozenset({"0", "f", "F", "false", "FALSE", "off", "OFF"})  # ActiveModel::Type::Boolean
_TRUE_WORDS = frozenset({"yes", "y", "true", "t", "on", "1"})  # Canvas::Plugin.value_to_boolean
_FALSE_WORDS = frozenset({"no", "n", "false", "f", "off", "0"})


class BadBody(ValueError):
    """A body Rails cannot parse (ActionDispatch::Http::Parameters::ParseError): the server answers 400."""


def nested_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rack's normalize_params for `k`, `k[]`, `k[a]`, `k[a][]` and deeper `k[a][b]`. A key that clashes with
    an earlier one of another shape (`k=1&k[a]=2`) replaces it, where Rack would answer 400."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        m = _KEY.match(key)
        if m is None:
            continue
        path = [m.group(1), *_PART.findall(m.group(2))]
        node = params
        for i, part in enumerate(path):
            last = i == len(path) - 1
            is_list = i + 1 < len(path) and path[i + 1] == "" and i + 2 == len(path)
            if last:
                node[part] = value
                break
            if is_list:
                existing = node.get(part)
                if isinstance(existing, list):
                    existing.append(value)
                else:
                    node[part] = [value]
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
    return params


def body_params(content_type: str, body: bytes) -> dict[str, Any]:
    """The parameters a body carries: JSON objects and urlencoded forms; other types carry none."""
    if not body.strip():
        return {}
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise BadBody(str(e)) from None
        # Rails keeps a non-object JSON body under "_json"; no endpoint here reads it.
        return data if isinstance(data, dict) else {"_json": data}
    if content_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadBody(str(e)) from None
        return nested_params(parse_qsl(text, keep_blank_values=True))
    return {}


def merge_params(body: dict[str, Any], query_string: str) -> dict[str, Any]:
    merged = dict(body)
    merged.update(nested_params(parse_qsl(query_string, keep_blank_values=True)))
    return merged


def value_to_boolean(value: Any) -> bool:
    """Canvas::Plugin.value_to_boolean: yes/y/true/t/on/1 and no/n/false/f/off/0 (any case), else to_i != 0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        m = re.match(r"\s*[+-]?\d+", value)
        return bool(m) and int(m.group(0)) != 0
    if isinstance(value, (int, float)):
        return int(value) != 0
    return False


def ruby_truthy(value: Any) -> bool:
    """`if params[:x]`: everything but nil and false, including "" and "false"."""
    return value is not None and value is not False


def rails_boolean(value: Any) -> bool | None:
    """ActiveModel::Type::Boolean#cast: "" and None are nil; "0", "f", "false", "off" (and 0) false; else true."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value not in _FALSE_VALUES
    return True


def rails_string(value: Any) -> str | None:
    """A string column's cast: None stays None, scalars become their text, true/false "t"/"f"."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float)):
        return str(value)
    return None  # a hash or an array: not a scalar parameter; treated as absent


def presence(value: Any) -> str | None:
    """Object#presence on a string parameter: None for nil, false, "" and whitespace."""
    text = rails_string(value) if ruby_truthy(value) else None
    return text if text is not None and text.strip() else None


class InvalidTime(ValueError):
    pass


def parse_time(value: Any) -> int | None:
    """A datetime parameter as whole UTC seconds. "" and None clear the date. ISO 8601 forms are read; a time
    without an offset is taken as UTC (Canvas uses the caller's time zone). Anything else: InvalidTime."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidTime(repr(value))
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(value) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() // 1)
