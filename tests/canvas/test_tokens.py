"""Finding the API token however a server spelled it (exporter.canvas.tokens)."""

import pytest

from exporter.canvas.tokens import WITHHELD, TokenFinder

TOKEN = "7~Zq8vK2mN5pR1tX4wY7bC0dF3gH6jL9aS2eU5iO8rT1yW4qE7zX0cV3bN6mK9lP"
RUN = TOKEN[2:]


@pytest.mark.parametrize("spelling", [
    TOKEN, TOKEN.replace("~", "%7E"), TOKEN.replace("~", "&#126;"), TOKEN.replace("~", "\\u007e"),
    TOKEN.replace("~", "~\u200b"),  # any character slipped in beside the punctuation
])
def test_a_token_whose_punctuation_is_escaped_is_still_found(spelling):
    finder = TokenFinder(TOKEN)
    text = f"error: bad token {spelling} given"
    assert finder.in_text(text) and finder.in_bytes(text.encode())
    assert RUN[:12] not in finder.redact(text)


@pytest.mark.parametrize("escape", [
    lambda t: "".join(f"%{ord(c):02X}" for c in t),  # every character percent-escaped
    lambda t: "".join(f"&#{ord(c)};" for c in t),  # every character an HTML entity
    lambda t: "".join(f"\\u{ord(c):04x}" for c in t),  # every character a JSON escape
])
def test_a_token_escaped_letter_by_letter_withholds_the_text(escape):
    finder = TokenFinder(TOKEN)
    text = f"<p>bad {escape(TOKEN)}</p>"
    assert finder.redact(text) == WITHHELD
    assert finder.escaped_in_bytes(text.encode())  # a body holding it is refused, whichever the escape


def test_text_without_the_token_is_left_alone():
    finder = TokenFinder(TOKEN)
    text = "plain %41 text &amp; a \\u0041 run ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert finder.redact(text) == text
    assert not finder.in_bytes(text.encode()) and not finder.escaped_in_bytes(text.encode())


def test_a_short_token_has_no_runs_to_search_for():
    """Runs shorter than 16 could be in any text; a token without a long one is searched for whole."""
    finder = TokenFinder("1~simulator-admin-token")
    assert finder.spellings == ["1~simulator-admin-token"]
    assert finder.redact("simulator and token") == "simulator and token"
    assert TokenFinder("").redact("anything") == "anything"
