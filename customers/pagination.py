"""Pagination of the customer list: exact counts, except where counting would cost more than the page.

At a million customers `SELECT count(*)` over an unfiltered or broad list takes longer than reading
the page itself. When PostgreSQL's planner expects more than ESTIMATE_ABOVE matching rows, the list
returns the planner's estimate as `count` and says so in the `X-Count-Estimated: true` header;
narrower lists (every search, most filters) are counted exactly.
"""

import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from crm_project.pagination import Pagination

ESTIMATE_ABOVE = 100_000


def planner_rows(queryset):
    """The planner's estimate of how many rows the queryset matches (no rows are read)."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return 0
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatingPaginator(Paginator):
    estimated = False

    @cached_property
    def count(self):
        queryset = self.object_list
        estimate = planner_rows(queryset.order_by())
        if estimate > ESTIMATE_ABOVE:
            self.estimated = True
            return estimate
        return queryset.count()


class CustomerPagination(Pagination):
    django_paginator_class = EstimatingPaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        if self.page.paginator.estimated:
            response["X-Count-Estimated"] = "true"
        return response
