"""One page of a list: shared by the inbox, the console and the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, with what a pager needs."""

    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def clamp_page(page: int | None, per_page: int | None) -> tuple[int, int]:
    """Query-string paging made safe: page ≥ 1, 1 ≤ per_page ≤ 500."""
    p = max(1, page if page is not None else 1)
    n = min(MAX_PER_PAGE, max(1, per_page if per_page is not None else DEFAULT_PER_PAGE))
    return p, n
