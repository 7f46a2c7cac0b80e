"""Paged lists (the plant list, open faults, a plant's devices): every page until the reported total is covered or
a page comes back short, each row once, and what the pages said about the total.

The gateway's largest page size is undocumented and it may serve fewer rows than asked without saying so: a pass
of several pages none of which held more than some smaller number tells the size it serves, which the API family
then asks for (and counts its calls by).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .envelope import ResponseError
from .parse import parse_int

MAX_PAGES = 100_000

Page = tuple[list[dict[str, Any]], int | None]  # the rows of one page and the total it reported


@dataclass
class Listing:
    """The rows of one pass, each item once, with what the pages said about the total."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)  # the total each page reported
    pages: int = 0
    duplicates: int = 0
    unusable: int = 0  # rows without a usable key: counted against the total, exported as nothing
    largest_page: int = 0  # the most rows one page held

    @property
    def reported_total(self) -> int | None:
        return self.totals[-1] if self.totals else None

    @property
    def consistent(self) -> bool:
        """Every page reported the same total and exactly that many distinct items were read. A list that changed
        while it was paged (items added or removed shift the pages) or a page that repeated or skipped items
        fails this; without a reported total nothing can be checked."""
        return not self.totals or (len(set(self.totals)) == 1 and len(self.rows) + self.unusable == self.totals[0])

    def served_page_size(self, asked: int) -> int | None:
        """The page size the gateway serves when it clamped the `asked` one silently, else None."""
        return self.largest_page if self.pages > 1 and 0 < self.largest_page < asked else None


def row_total(data: Mapping[str, Any], keys: tuple[str, str] = ("row_count", "rowCount")) -> int | None:
    """The list's total: the platform tables say `row_count`, the legacy ones and some examples `rowCount`; either
    is accepted (first of `keys` that holds a count)."""
    for key in keys:
        number = parse_int(data.get(key))
        if number is not None and number >= 0:
            return number
    return None


def read_pages(page: Callable[[int], Page], key: Callable[[Mapping[str, Any]], Hashable | None], *, asked: int,
               endpoint: str, max_pages: int = MAX_PAGES, too_many: str = "without an end",
               first_total: Callable[[int], None] | None = None) -> Listing:
    """Pages 1, 2, … of `page` (asked for `asked` rows each), de-duplicated by `key` (None: an unusable row).
    `first_total` sees the first page's total before its rows are taken, and may raise to stop there."""
    listing = Listing()
    seen: set[Hashable] = set()
    number = 1
    page_limit: int | None = None
    while True:
        rows, total = page(number)
        listing.pages += 1
        listing.largest_page = max(listing.largest_page, len(rows))
        if total is not None:
            listing.totals.append(total)
            # The total may change between pages; allow two extra pages for items added meanwhile, but never
            # page forever through a server that keeps repeating full pages.
            page_limit = max(page_limit or 0, math.ceil(total / max(listing.largest_page, 1)) + 2)
            if number == 1 and first_total is not None:
                first_total(total)
        for row in rows:
            item = key(row)
            if item is None:
                listing.unusable += 1
            elif item in seen:
                listing.duplicates += 1
            else:
                seen.add(item)
                listing.rows.append(row)
        if not rows or (total is None and len(rows) < asked):
            break
        if total is not None and number * listing.largest_page >= total:
            break
        if page_limit is not None and number >= page_limit:
            break
        if number >= max_pages:
            raise ResponseError(endpoint, "invalid_response", f"more than {max_pages} pages {too_many}")
        number += 1
    return listing
