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
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_ENTITY = re.compile(rb"&(?:#|[A-Za-z]+;)")
WITHHELD = "[withheld: it holds the API token, escaped]"


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

    def in_text(self, text: str) -> bool:
        return any(s in text for s in self._texts)

    def in_bytes(self, data: bytes) -> bool:
        """Whether `data` holds the token or one of its runs as they are (a C-speed search each)."""
        return any(s in data for s in self._bytes)

    def escaped_in_bytes(self, data: bytes) -> bool:
        """`escaped_in` for a body, decoded only if it has a percent escape of one of the token's characters
        or an HTML entity (JSON escapes are the client's own check)."""
        if not self.spellings:
            return False
        # A C-speed scan for each kind first: a JSON page from Canvas usually has neither `%` nor `&`.
        if not ((b"%" in data and self._percent.search(data)) or (b"&" in data and _ENTITY.search(data))):
            return False
        return self.escaped_in(data.decode("utf-8", "replace"))

    def escaped_in(self, text: str) -> bool:
        """Whether `text` holds the token once percent escapes, HTML entities or JSON `\\uXXXX` escapes are
        undone (each tried alone)."""
        if "%" in text and self.in_text(unquote(text)):
            return True
        if "&" in text and self.in_text(html.unescape(text)):
            return True
        return "\\u" in text and self.in_text(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))

    def redact(self, text: str) -> str:
        """`text` with the token, or any run of it, replaced by `[token]`; withheld whole if it holds the
        token escaped."""
        if not self.spellings:
            return text
        for spelling in self.spellings:
            text = text.replace(spelling, "[token]")
        return WITHHELD if self.escaped_in(text) else text
