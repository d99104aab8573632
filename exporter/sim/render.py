"""The serving cache: the JSON bytes of each course, section and user as an answer shows them, per variant.

A list answer's body is `[` + the items' JSON joined by `,` + `]`, which is byte for byte what
`orjson.dumps(list)` writes (orjson puts no whitespace anywhere). Each item's bytes are `orjson.dumps` of
the very dict the reference path builds (views.py, `endpoints.users_json_fast`), string ids applied
first when asked for, so the cache can only be stale, never different; tests compare both paths.

A variant is everything besides the model that shapes an item: the token's permissions, the include[]
set, the students cap, whether test students are listed; string ids come on top. Two levels:

- per variant, one table of item bytes by item key (a course id, a section id, a user id and whether
  their personal fields are hidden), so a user listed in three sections is rendered once;
- per list and variant, the bytes aligned with the list (a section's roster, a course's sections, an
  account's courses, as the institution's views cache them), so a page seen before is one slice and one
  join, without touching the model objects (scattered in memory: reading them costs cache misses).

An item's bytes depend on the model only through `Institution`, so one rule invalidates everything:
`RenderCache.current(inst)` drops both levels when `sim.institution` is another object or its `version`
moved (every mutation method, `touch()` and `reindex()` bump it). The ground truth never reads this
cache: it builds its rows from the views (truth.py).
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence, TypeVar

import orjson

from exporter.sim.institution import Institution
from exporter.sim.views import stringify_ids

T = TypeVar("T")


class _Aligned:
    """The rendered items of one list in one variant: None where not rendered yet."""

    __slots__ = ("items", "parts", "dropped", "done")

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items  # held, so id(items) cannot be reused while this lives
        self.parts: list[bytes | None] = [None] * len(items)
        self.dropped: set[int] = set()  # positions left out of every page (test students)
        self.done: set[tuple[int, int]] = set()  # (offset, count) ranges fully rendered


class RenderCache:
    """Rendered items of one institution state. Built lazily, dropped wholesale on any change."""

    def __init__(self) -> None:
        self._institution: Institution | None = None
        self._version = -1
        self._tables: dict[Hashable, dict[Hashable, bytes]] = {}
        self._lists: dict[Hashable, _Aligned] = {}

    def current(self, inst: Institution) -> RenderCache:
        """This cache, emptied first if the institution (or its state) is not the one it was built from."""
        if inst is not self._institution or inst.version != self._version:
            self._tables = {}
            self._lists = {}
            self._institution = inst
            self._version = inst.version
        return self

    def __len__(self) -> int:
        """How many items are rendered, over every variant."""
        return sum(len(t) for t in self._tables.values())

    def _table(self, variant: Hashable) -> dict[Hashable, bytes]:
        table = self._tables.get(variant)
        if table is None:
            table = self._tables[variant] = {}
        return table

    def page(self, variant: Hashable, items: Sequence[T], offset: int, count: int, *, string_ids: bool,
             key: Callable[[T], Hashable], build: Callable[[list[T]], list[dict[str, Any]]],
             drop: Callable[[T], bool] | None = None) -> tuple[bytes, int]:
        """items[offset:offset + count] as a JSON array, and how many it holds. `items` must be a list the
        institution caches (a view), so that the same object comes back while the state lasts; `build`
        makes the dicts of several items at once; `drop` leaves items out (part of the variant)."""
        slot_key = (id(items), variant, string_ids)
        aligned = self._lists.get(slot_key)
        if aligned is None or aligned.items is not items:
            aligned = self._lists[slot_key] = _Aligned(items)
        end = offset + count
        if (offset, count) not in aligned.done:
            self._fill(aligned, offset, end, (variant, string_ids), string_ids, key, build, drop)
            aligned.done.add((offset, count))
        parts = aligned.parts[offset:end]
        if aligned.dropped and not aligned.dropped.isdisjoint(range(offset, end)):
            parts = [p for i, p in enumerate(parts, offset) if i not in aligned.dropped]
        return b"[" + b",".join(parts) + b"]", len(parts)  # type: ignore[arg-type]

    def _fill(self, aligned: _Aligned, offset: int, end: int, table_key: Hashable, string_ids: bool,
              key: Callable[[Any], Hashable], build: Callable[[list[Any]], list[dict[str, Any]]],
              drop: Callable[[Any], bool] | None) -> None:
        table = self._table(table_key)
        items, parts = aligned.items, aligned.parts
        todo: list[tuple[int, Hashable]] = []
        for i in range(offset, min(end, len(items))):
            if parts[i] is not None or i in aligned.dropped:
                continue
            item = items[i]
            if drop is not None and drop(item):
                aligned.dropped.add(i)
                parts[i] = b""
                continue
            k = key(item)
            found = table.get(k)
            if found is None:
                todo.append((i, k))
            else:
                parts[i] = found
        if todo:
            for (i, k), obj in zip(todo, build([items[i] for i, _ in todo])):
                parts[i] = table[k] = _dumps(obj, string_ids)

    def one(self, variant: Hashable, item: T, key: Hashable, build: Callable[[T], dict[str, Any]],
            string_ids: bool) -> bytes:
        """One item's bytes, from the same tables as the pages."""
        table = self._table((variant, string_ids))
        found = table.get(key)
        if found is None:
            found = table[key] = _dumps(build(item), string_ids)
        return found


def _dumps(obj: dict[str, Any], string_ids: bool) -> bytes:
    return orjson.dumps(stringify_ids(obj) if string_ids else obj)
