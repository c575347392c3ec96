"""Pagination of every list: `?page=` and `?page_size=` (max 500); a page past the end is a 404,
whatever its number."""

from django.core.paginator import EmptyPage
from django.core.paginator import Paginator as DjangoPaginator
from rest_framework.pagination import PageNumberPagination

# PostgreSQL's OFFSET is a bigint: no page can start beyond it (asking would be an error, not a 404).
MAX_OFFSET = 2**63 - 1


def page_offset(number, per_page):
    """Where page `number` (an int >= 1) starts; EmptyPage when no page can start there."""
    offset = (number - 1) * per_page
    if offset > MAX_OFFSET:
        raise EmptyPage("That page contains no results")
    return offset


class Paginator(DjangoPaginator):
    def page(self, number):
        """A page past the end is EmptyPage (DRF's 404) even where the count is an estimate that
        promises more pages than there are rows."""
        page = super().page(number)
        if page.number > 1:
            page.object_list = list(page.object_list)  # read once: the response reuses the rows
            if not page.object_list:
                raise EmptyPage("That page contains no results")
        return page


class Pagination(PageNumberPagination):
    django_paginator_class = Paginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
