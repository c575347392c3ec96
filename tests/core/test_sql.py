"""core.sql: id lists as one array literal for `= ANY(%s::bigint[])`."""

import pytest
from django.db import connection

from core.sql import id_array


@pytest.mark.django_db
def test_it_writes_ids_as_one_array_literal_postgresql_reads_back():
    assert id_array([3, 1, 2]) == "{3,1,2}"
    assert id_array([]) == "{}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [id_array([1, -2, 9_000_000_000])])
        assert cursor.fetchone()[0] == [1, -2, 9_000_000_000]


def test_it_refuses_anything_but_integers():
    with pytest.raises((TypeError, ValueError)):
        id_array(["1}, {2"])
    with pytest.raises((TypeError, ValueError)):
        id_array([None])
