"""Parameters for set-based SQL on hot paths.

Django's psycopg backend binds parameters on the client: a Python list becomes an ARRAY[...] whose
every element is quoted on its own (through a regular expression), which for a thousand ids costs
more than the statement that reads them. An id list passed as one array literal is one string to
quote: `WHERE id = ANY(%s::bigint[])` with `id_array(ids)`.
"""


def id_array(ids):
    """A PostgreSQL array literal of integer ids ("{1,2,3}"), for a `%s::bigint[]` parameter. Each
    id goes through int(), so nothing but digits and a sign reaches the literal."""
    return "{" + ",".join(str(int(pk)) for pk in ids) + "}"
