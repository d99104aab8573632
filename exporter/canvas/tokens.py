"""Finding the API token in what a server sent, however it was spelled.

A server that echoes the token (a proxy's error page, a field that holds a URL with the token in its query)
may escape it: percent escapes, HTML entities, JSON's `\\u007e`. A Canvas token is an id, `~` and 64
letters and digits; escaping its punctuation leaves each long run of letters and digits as it is, so those
runs are searched for as well as the whole token. A text that still holds the token once its percent
escapes, HTML entities or JSON escapes are undone (letters escaped too) is withheld whole.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

_RUN = re.compile(r"[A-Za-z0-9]{16,}")  # long enough that no text holds one of a token's by chance
_ENTITY = re.compile(rb"&(?:#|[A-Za-z]+;)")
WITHHELD = "[withheld: it holds the API token, escaped]"
_JSON_ESCAPE = re.compile(rb'\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})'  # a surrogate pair
                          rb'|\\(?:u([0-9a-fA-F]{4})|(.))', re.DOTALL)
_SHORT_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
                  b"t": b"\t"}


def _unescaped(match: re.Match[bytes]) -> bytes:
    """One JSON escape as the UTF-8 bytes it stands for (a lone surrogate or an unknown escape: as is)."""
    high, low, code, short = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00).encode()
    if code is None:
        return _SHORT_ESCAPES.get(short, match.group(0))
    n = int(code, 16)
    return match.group(0) if 0xD800 <= n < 0xE000 else chr(n).encode()


def _escapes_spelling(token: str) -> re.Pattern[bytes]:
    """A pattern for the JSON escapes that stand for a character of `token` (any surrogate, if the token has
    a character outside the Basic Multilingual Plane)."""
    short = {v.decode(): k for k, v in _SHORT_ESCAPES.items()}
    spellings = [b"u" + f"{ord(c):04x}".encode() for c in set(token) if ord(c) < 0x10000]
    spellings += [re.escape(short[c]) for c in set(token) if c in short]
    if any(ord(c) >= 0x10000 for c in token):
        spellings.append(b"u[dD][89abAB][0-9a-fA-F]{2}")
    return re.compile(rb"(?i)\\(?:" + b"|".join(spellings or [b"(?!)"]) + b")")


class TokenFinder:
    def __init__(self, token: str) -> None:
        self.token = token
        runs = {m.group(0) for m in _RUN.finditer(token)}
        self.spellings = sorted({token, *runs} - {""}, key=len, reverse=True)  # the whole token first
        # To find it, its runs alone are enough (the token holds each); with none, the token itself.
        self._texts = sorted(runs) or self.spellings
        self._bytes = [s.encode() for s in self._texts]
        # Escapes that could spell one of the token's characters: only a body with one is decoded to look.
        codes = sorted({f"{ord(c):02x}" for c in token if ord(c) < 0x80})
        self._percent = re.compile(rb"(?i)%(?:" + "|".join(codes or ["(?!)"]).encode() + rb")")
        self._json = _escapes_spelling(token)

    def in_text(self, text: str) -> bool:
        return any(s in text for s in self._texts)

    def in_bytes(self, data: bytes) -> bool:
        """Whether `data` holds the token or one of its runs as they are (a C-speed search each)."""
        return any(s in data for s in self._bytes)

    def escaped_in_bytes(self, data: bytes) -> bool:
        """Whether a body holds the token once its JSON escapes, percent escapes or HTML entities are undone
        (each tried alone). A C-speed scan for each kind first: a body is decoded only if it has an escape
        that could spell one of the token's characters (a JSON page from Canvas usually has none)."""
        if not self.spellings:
            return False
        if b"\\" in data and self._json.search(data) and self.in_bytes(_JSON_ESCAPE.sub(_unescaped, data)):
            return True
        if (b"%" in data and self._percent.search(data)) or (b"&" in data and _ENTITY.search(data)):
            return self._unquoted_in(data.decode("utf-8", "replace"))
        return False

    def escaped_in(self, text: str) -> bool:
        """Whether `text` holds the token once its percent escapes, HTML entities or JSON escapes are undone
        (each tried alone)."""
        return self._unquoted_in(text) or ("\\" in text and self.in_bytes(
            _JSON_ESCAPE.sub(_unescaped, text.encode("utf-8", "surrogatepass"))))

    def _unquoted_in(self, text: str) -> bool:
        return (("%" in text and self.in_text(unquote(text)))
                or ("&" in text and self.in_text(html.unescape(text))))

    def redact(self, text: str) -> str:
        """`text` with the token, or any run of it, replaced by `[token]`; withheld whole if it holds the
        token escaped."""
        if not self.spellings:
            return text
        for spelling in self.spellings:
            text = text.replace(spelling, "[token]")
        return WITHHELD if self.escaped_in(text) else text
