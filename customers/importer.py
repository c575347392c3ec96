"""CSV import of customers: COPY into a staging table, then set-based upserts, chunk by chunk.

One entry point, `import_customers_csv(path_or_file=..., progress=...)`, used by the management
command `import_customers`, the admin upload (a Celery task) and the benchmark.

- The file is read as bytes, one line at a time, so memory stays flat whatever its size. A line that
  is not UTF-8, holds a NUL, has broken quoting or the wrong number of columns is reported with its
  line number and skipped; the good rows are kept. A quoted cell may hold line breaks (a record then
  spans lines, as in our own export); a quote left open swallows at most MAX_RECORD_LINES lines, and
  the lines after the first of a record that fails are read again as records of their own.
- Cells are read as spreadsheets write them: a leading apostrophe that marks a formula-like value as
  text (our export's guard, customers.spreadsheet) is dropped, so an export imports back unchanged.
- An address that was erased (GDPR; customers.privacy) is not imported again: its row is reported.
- A row never resubscribes someone who unsubscribed (email_marketing true is left out for them and
  recorded as a `resubscribe_ignored` interaction; the rest of the row applies).
- Columns are mapped by header (any case): email (required), external_id, first_name, last_name,
  phone, city, country, tags (comma-separated names, added to the customer's tags), email_marketing,
  email_transactional (true/false/yes/no/1/0), unsubscribed_at (ISO 8601), attributes (a JSON object)
  and attributes.<key> (one attribute per column). The read-only columns of the CSV export (id,
  total_spent, ...) are ignored, so an export can be imported back; any other column is refused.
- Upsert on email: a new email creates a customer; a known one is updated with the non-empty cells
  (an empty cell never wipes a value); attributes are merged. When an email repeats, the later row wins.
- Validation happens in SQL over the whole chunk (email shape, country code, booleans, lengths,
  external_id taken by another customer); each chunk commits on its own.
- customer.created / customer.updated events go into the outbox in the chunk's transaction, as batch
  rows naming the changed customers (customers.outbox); the publisher sends one event per customer with
  the payload of GET /api/customers/{id}.
"""

import collections
import csv
import io
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import IntegrityError, connection, transaction
from django.db.models.expressions import RawSQL

from core.values import FALSE_WORDS, TRUE_WORDS, email_is_valid, parse_bool
from events.services import outbox_kick

from . import hooks, outbox
from .countries import COUNTRY_CODES
from .models import Address, Customer, CustomerTag, ErasedAddress, Interaction, Tag
from .privacy import address_hasher
from .services import RESUBSCRIBE_IGNORED
from .spreadsheet import unguard

logger = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
# A file at least this large into a tenant without customers is a first load (see _indexes_drop).
BULK_LOAD_MIN_BYTES = 4 * 1024 * 1024
MAX_REPORTED_ERRORS = 1000
# Physical lines one record may span (a quoted cell with line breaks); a quote left open ends here.
MAX_RECORD_LINES = 100
ERASED_ROW = "this address was erased at the person's request (GDPR); it is not imported again"
TEXT_COLUMNS = {"external_id": 255, "first_name": 150, "last_name": 150, "phone": 50, "city": 150}
BOOL_COLUMNS = ("email_marketing", "email_transactional")
COLUMNS = ("email", *TEXT_COLUMNS, "country", "tags", *BOOL_COLUMNS, "unsubscribed_at", "attributes")
IGNORED_COLUMNS = {
    "id",
    "total_spent",
    "order_count",
    "first_order_at",
    "last_order_at",
    "created_at",
    "updated_at",
}

IMPORT_SOURCE = "a CSV import"
STAGING = "customer_import_staging"
ERRORS = "customer_import_errors"
TOUCHED = "customer_import_touched"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no header, unknown columns, ...): nothing was written."""


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    duplicates: int = 0
    resubscribes_ignored: int = 0
    errors: list = field(default_factory=list)  # [(line, reason)], the first MAX_REPORTED_ERRORS
    ignored_columns: list = field(default_factory=list)
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per phase, for tuning
    bulk_load: bool = False  # a first load: secondary indexes built once at the end

    def add_errors(self, rows):
        self.failed += len(rows)
        room = MAX_REPORTED_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(rows[:room])

    def as_dict(self):
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "resubscribes_ignored": self.resubscribes_ignored,
            "errors": [list(error) for error in self.errors],
            "ignored_columns": self.ignored_columns,
            "seconds": round(self.seconds, 3),
            "timings": {phase: round(seconds, 3) for phase, seconds in self.timings.items()},
            "bulk_load": self.bulk_load,
        }


class _BrokenRecord(Exception):
    pass


@dataclass
class _Chunk:
    payload: bytes  # rows in COPY text format
    errors: list  # [(line, reason)] of the lines it skipped
    bytes_read: int


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value):
    """A value in COPY's text format: \\N for NULL, backslash and control characters escaped."""
    return "\\N" if value is None else str(value).translate(_COPY_ESCAPES)


class _ahead:
    """Runs a generator one item ahead in a thread: the next chunk is read and parsed while the
    database works on this one (parsing is Python, the database waits on a socket without the GIL).
    At most one finished chunk waits, so memory stays at two chunks whatever the file's size."""

    def __init__(self, generator):
        self.generator = generator
        self.queue = queue.Queue(maxsize=1)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="import-reader", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for item in self.generator:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as error:  # handed to the consumer, raised there
            self._put(("error", error))

    def _put(self, entry):
        while not self.stopped.is_set():
            try:
                self.queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        kind, value = self.queue.get()
        if kind == "error":
            raise value
        if kind == "end":
            self.queue.put(("end", None))
            raise StopIteration
        return value

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)


class _Lines:
    """Decoded lines of a binary file, handed to the csv reader record by record.

    A record is one line, or several when a quoted cell holds line breaks. `begin_record` starts one;
    a record that turns out broken (a quote left open for MAX_RECORD_LINES lines or to the end of the
    file, the wrong number of columns) gives back its lines after the first with `read_again`, so a
    stray quote costs the one line it is on, whatever follows it.
    """

    def __init__(self, binary, report_error):
        self.binary = binary
        self.report_error = report_error
        self.line_no = 0  # the last line read from the file
        self.bytes_read = 0
        self.record = []  # [(line number, text)] of the record being read
        self.again = collections.deque()  # lines given back, read before the file's next ones

    def begin_record(self):
        self.record = []

    @property
    def record_line(self):
        """The line a record starts on (what reports name)."""
        return self.record[0][0] if self.record else self.line_no

    def read_again(self):
        self.again.extendleft(reversed(self.record[1:]))
        del self.record[1:]

    def __iter__(self):
        return self

    def __next__(self):
        if len(self.record) >= MAX_RECORD_LINES:
            raise _BrokenRecord()
        if self.again:
            line_no, text = self.again.popleft()
        else:
            line_no, text = self._read()
        self.record.append((line_no, text))
        return text

    def _read(self):
        while True:
            raw = self.binary.readline()
            if not raw:
                if self.record:  # inside a quoted cell at the end of the file
                    raise _BrokenRecord()
                raise StopIteration
            self.line_no += 1
            self.bytes_read += len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                self.report_error(
                    self.line_no,
                    f"not UTF-8 (byte 0x{raw[error.start]:02x} at position {error.start + 1}); save the file as UTF-8",
                )
                continue
            if self.line_no == 1:
                text = text.lstrip("\ufeff")
            if "\x00" in text:
                self.report_error(self.line_no, "contains a NUL character")
                continue
            return self.line_no, text


def _header_mapping(header):
    names = [name.strip().lower() for name in header]
    seen, duplicates, unknown, ignored = set(), [], [], []
    mapping = {}  # staging column or "attr:<key>" -> position in the row
    for position, name in enumerate(names):
        if name in seen:
            duplicates.append(name)
        seen.add(name)
        if name in COLUMNS:
            mapping[name] = position
        elif name.startswith("attributes.") and len(name) > len("attributes."):
            mapping["attr:" + header[position].strip()[len("attributes.") :]] = position
        elif name in IGNORED_COLUMNS or name == "":
            ignored.append(name)
        else:
            unknown.append(header[position].strip())
    if duplicates:
        raise ImportFileError(f"Repeated column(s): {', '.join(duplicates)}.")
    if unknown:
        known = ", ".join([*COLUMNS, "attributes.<key>"])
        raise ImportFileError(f"Unknown column(s): {', '.join(unknown)}. Known columns: {known}.")
    if "email" not in mapping:
        raise ImportFileError("The file has no 'email' column (the header is its first line).")
    return mapping, ignored


def _row_values(row, mapping, attribute_columns):
    """The staging tuple of one CSV row, normalised and checked, or ValueError with the reason.

    Per-cell checks run here (set and regex lookups cost well under a microsecond in Python, less
    than the same test per row in SQL); what needs the database (external_id owners) runs in SQL.
    """
    values = []
    for column in COLUMNS:
        position = mapping.get(column)
        value = unguard(row[position].strip()) if position is not None else None
        if not value:
            if column == "email":
                raise ValueError("email is missing")
            if column == "attributes":  # an empty cell is no JSON: nothing to merge (NULL)
                value = _attributes(row, None, attribute_columns) if attribute_columns else None
            values.append(value)
            continue
        if column == "email":
            value = value.lower()
            if len(value) > 254:
                raise ValueError("email is longer than 254 characters")
            if not email_is_valid(value):
                raise ValueError(f"email '{value}' is not a valid address")
        elif column == "country":
            value = value.upper()
            if value not in COUNTRY_CODES:
                raise ValueError(f"country '{value}' is not an ISO 3166-1 alpha-2 code")
        elif column in TEXT_COLUMNS:
            if len(value) > TEXT_COLUMNS[column]:
                raise ValueError(f"{column} is longer than {TEXT_COLUMNS[column]} characters")
        elif column in BOOL_COLUMNS:
            try:
                flag = parse_bool(value)
            except ValueError:
                raise ValueError(f"{column} '{value}' is not true or false")
            value = "true" if flag else "false"
        elif column == "tags":
            if any(len(name.strip()) > 100 for name in value.split(",")):
                raise ValueError("a tag name is longer than 100 characters")
        elif column == "unsubscribed_at":
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"unsubscribed_at '{value}' is not an ISO 8601 date-time")
            if parsed.tzinfo is None:
                raise ValueError(f"unsubscribed_at '{value}' needs a UTC offset (e.g. Z or +01:00)")
            value = parsed.isoformat()
        elif column == "attributes":
            value = _attributes(row, value, attribute_columns)
        values.append(value)
    return values


def _attributes(row, value, attribute_columns):
    attributes = {}
    if value:
        try:
            attributes = json.loads(value)
        except ValueError:
            raise ValueError("attributes is not valid JSON")
        if not isinstance(attributes, dict):
            raise ValueError("attributes is not a JSON object")
    for key, position in attribute_columns:
        cell = unguard(row[position].strip())
        if cell:
            attributes[key] = cell
    return json.dumps(attributes, ensure_ascii=False) if attributes else None


def _bool_sql(column):
    return (
        f"CASE WHEN lower(s.{column}) IN ({', '.join(repr(w) for w in sorted(TRUE_WORDS))}) THEN true "
        f"WHEN lower(s.{column}) IN ({', '.join(repr(w) for w in sorted(FALSE_WORDS))}) THEN false END"
    )


class _Importer:
    def __init__(self, *, progress=None, chunk_rows=CHUNK_ROWS, emit_events=True):
        self.progress = progress
        self.emit_events = emit_events
        self.chunk_rows = chunk_rows
        self.report = ImportReport()
        self.customers = Customer._meta.db_table
        self.tags = Tag._meta.db_table
        self.customer_tags = CustomerTag._meta.db_table
        self.addresses = Address._meta.db_table
        self.pending_errors = []
        self.read_errors = []

    def _read_error(self, line, reason):
        # Only the reading side (the header, then the reader thread) appends here.
        self.read_errors.append((line, reason))

    def run(self, binary, total_bytes):
        started = time.monotonic()
        lines = _Lines(binary, self._read_error)
        reader = csv.reader(lines, strict=True)
        header = self._header(reader, lines)
        mapping, self.report.ignored_columns = _header_mapping(header)
        self.present = {column for column in COLUMNS if column in mapping}
        attribute_columns = [(key[5:], pos) for key, pos in mapping.items() if key.startswith("attr:")]
        if attribute_columns:
            self.present.add("attributes")
        # Loaded before the reader thread starts: it checks every row against them.
        self.erased = set(ErasedAddress.objects.values_list("email_hash", flat=True))
        self.address_hash = address_hasher()
        chunks = _ahead(self._chunks(reader, lines, mapping, attribute_columns, len(header)))
        try:
            with connection.cursor() as cursor:
                self._create_temp_tables(cursor)
                if (total_bytes or 0) >= BULK_LOAD_MIN_BYTES and self._customers_empty(cursor):
                    self.report.bulk_load = True
                    with transaction.atomic():
                        indexes = self._timed("drop indexes", self._indexes_drop, cursor)
                        self._apply(cursor, chunks, total_bytes, asynchronous_commits=False)
                        self._timed("build indexes", self._indexes_build, cursor, indexes)
                else:
                    self._apply(cursor, chunks, total_bytes, asynchronous_commits=True)
                    with transaction.atomic():
                        cursor.execute("SELECT txid_current()")  # a synchronous commit: all chunks on disk
                cursor.execute(f"DROP TABLE IF EXISTS {STAGING}, {ERRORS}, {TOUCHED}")
        finally:
            chunks.close()
        self.report.errors.sort()
        r = self.report
        r.rows = r.created + r.updated + r.unchanged + r.failed + r.duplicates
        self.report.seconds = time.monotonic() - started
        return self.report

    def _apply(self, cursor, chunks, total_bytes, *, asynchronous_commits):
        """Each chunk in a transaction of its own (a savepoint inside a bulk load's transaction)."""
        while True:
            chunk = self._timed("read", next, chunks, None)
            if chunk is None:
                return
            atomic = transaction.atomic()
            atomic.__enter__()
            try:
                if asynchronous_commits:
                    # A chunk's commit need not wait for its WAL to reach the disk (190 ms each at 50k
                    # rows): the import's last transaction does, and that flushes every chunk before
                    # it. A server crash in between loses the unflushed chunks only, and the import
                    # reports failure; running it again upserts the same rows.
                    cursor.execute("SET LOCAL synchronous_commit = off")
                cursor.execute(f"TRUNCATE {STAGING}, {ERRORS}, {TOUCHED}")
                self._timed("copy", self._copy_chunk, cursor, chunk.payload)
                self.pending_errors = chunk.errors
                self._process_chunk(cursor)
            except BaseException:
                atomic.__exit__(*sys.exc_info())
                raise
            self._timed("commit", atomic.__exit__, None, None, None)
            if self.progress:
                self.progress(chunk.bytes_read, total_bytes, self.report)

    def _customers_empty(self, cursor):
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {self.customers})")
        return cursor.fetchone()[0]

    def _indexes_drop(self, cursor):
        """A first load into an empty customer table: its secondary indexes (trigram search, filters,
        orderings) are dropped and built once at the end, which is several times cheaper than
        maintaining them row by row. Unique indexes stay: the upsert relies on them. Everything runs
        in one transaction, so a failure or a crash leaves the table with every index, as before;
        meanwhile the table is locked for other writers and readers (it was empty).
        Returns the dropped indexes' definitions."""
        cursor.execute(
            """
            SELECT c.relname, pg_get_indexdef(i.indexrelid)
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
             ORDER BY c.relname
            """,
            [self.customers],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        return [definition for _, definition in indexes]

    def _indexes_build(self, cursor, definitions):
        # Sorting a million keys in memory instead of on disk: this transaction only.
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for definition in definitions:
            cursor.execute(definition)

    def _header(self, reader, lines):
        while True:
            lines.begin_record()
            try:
                header = next(reader)
            except StopIteration:
                raise ImportFileError("The file is empty: the first line must name the columns.")
            except (csv.Error, _BrokenRecord) as error:
                raise ImportFileError(f"The header (line {lines.record_line}) is not valid CSV: {error}.")
            if self.read_errors:
                line, reason = self.read_errors[0]
                raise ImportFileError(f"The header (line {line}) cannot be read: {reason}.")
            if header:
                return header

    def _create_temp_tables(self, cursor):
        text_columns = ", ".join(f"{column} text" for column in COLUMNS)
        # customer_id: the customer a row updates or created, once known (the upsert's steps share it).
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (line bigint, {text_columns}, customer_id bigint)"
        )
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {ERRORS} (line bigint, reason text)")
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {TOUCHED} "
            "(id bigint PRIMARY KEY, created boolean, changed text[], email text)"
        )

    def _chunks(self, reader, lines, mapping, attribute_columns, width):
        """The file's good rows, chunk_rows at a time, as COPY text ready to send, with the chunk's bad
        lines. Runs in the reader thread (see _ahead), so parsing overlaps the database's work."""
        while True:
            out, rows, done = io.StringIO(), 0, False
            while rows < self.chunk_rows:
                lines.begin_record()
                try:
                    row = next(reader)
                except StopIteration:
                    done = True
                    break
                except _BrokenRecord:
                    self._broken(lines, "a quoted field is not closed on this line")
                    continue
                except csv.Error as error:
                    self._broken(lines, f"broken CSV quoting ({error})")
                    continue
                line = lines.record_line
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != width:
                    self._broken(lines, f"expected {width} columns, found {len(row)}")
                    continue
                try:
                    values = _row_values(row, mapping, attribute_columns)
                except ValueError as error:
                    self._read_error(line, str(error))
                    continue
                if self.erased and self.address_hash(values[0]) in self.erased:
                    self._read_error(line, ERASED_ROW)
                    continue
                out.write("\t".join((str(line), *map(_copy_text, values))) + "\n")
                rows += 1
            errors, self.read_errors = self.read_errors, []
            yield _Chunk(out.getvalue().encode("utf-8"), errors, lines.bytes_read)
            if done:
                return

    def _broken(self, lines, reason):
        self._read_error(lines.record_line, reason)
        lines.read_again()

    def _copy_chunk(self, cursor, payload):
        with cursor.cursor.copy(f"COPY {STAGING} (line, {', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(payload)

    def _timed(self, phase, step, *args):
        started = time.monotonic()
        result = step(*args)
        self.report.timings[phase] = self.report.timings.get(phase, 0.0) + time.monotonic() - started
        return result

    def _process_chunk(self, cursor):
        # The planner needs the chunk's size and rough distributions, not fine histograms: a tenth of
        # the default sample keeps ANALYZE of a 50k-row chunk at a few milliseconds instead of ~100.
        cursor.execute("SET LOCAL default_statistics_target = 10")
        cursor.execute(f"ANALYZE {STAGING}")
        cursor.execute("SET LOCAL default_statistics_target = DEFAULT")
        self._timed("validate", self._validate, cursor)
        self._timed("dedupe", self._dedupe, cursor)
        self._timed("update", self._update_existing, cursor)
        self._timed("insert", self._insert_new, cursor)
        if "tags" in self.present:
            self._timed("tags", self._add_tags, cursor)
        if self.emit_events:
            self._timed("events", self._emit_events, cursor)
        self._timed("note", self._note_changed)
        cursor.execute(f"SELECT line, reason FROM {ERRORS} ORDER BY line")
        self.report.add_errors(sorted(self.pending_errors + list(cursor.fetchall())))
        self.pending_errors = []

    def _validate(self, cursor):
        """What needs the database: external_id owned by another customer, or by an earlier row."""
        if "external_id" not in self.present:
            return
        cursor.execute(
            f"""
            WITH bad AS (
                INSERT INTO {ERRORS} (line, reason)
                SELECT s.line, CASE
                    WHEN s.first_email <> s.email
                    THEN 'external_id ''' || s.external_id || ''' is also used by an earlier row with another email'
                    ELSE 'external_id ''' || s.external_id || ''' belongs to another customer' END
                  FROM (
                    -- A window, not a correlated lookup: the staging table has no index.
                    SELECT line, email, external_id,
                           first_value(email) OVER (PARTITION BY external_id ORDER BY line) AS first_email
                      FROM {STAGING} WHERE external_id <> ''
                  ) s
                 WHERE s.first_email <> s.email
                    OR EXISTS (SELECT 1 FROM {self.customers} c
                                WHERE c.external_id = s.external_id AND c.email IS DISTINCT FROM s.email)
                RETURNING line
            )
            DELETE FROM {STAGING} s USING bad WHERE s.line = bad.line
            """
        )

    def _dedupe(self, cursor):
        """Rows repeating an email merge into one, as if applied in order: for each column the last
        non-empty cell wins, tags add up. (Across chunks the upsert itself gives the same result.)"""
        merged = []
        for column in COLUMNS:
            if column == "email":
                continue
            if column == "tags":
                merged.append("string_agg(s.tags, ',' ORDER BY s.line) FILTER (WHERE s.tags <> '')")
            else:
                merged.append(
                    f"(array_agg(s.{column} ORDER BY s.line DESC) FILTER (WHERE s.{column} <> ''))[1]"
                )
        cursor.execute(
            f"""
            WITH repeated AS (SELECT email FROM {STAGING} GROUP BY email HAVING count(*) > 1),
            merged AS (
                SELECT max(s.line) AS line, s.email, {", ".join(merged)}
                  FROM {STAGING} s JOIN repeated r ON r.email = s.email GROUP BY s.email
            ), removed AS (
                DELETE FROM {STAGING} s USING repeated r WHERE s.email = r.email RETURNING 1
            ), added AS (
                INSERT INTO {STAGING} (line, {", ".join(COLUMNS)}) SELECT * FROM merged RETURNING 1
            )
            SELECT (SELECT count(*) FROM removed) - (SELECT count(*) FROM added)
            """
        )
        self.report.duplicates += cursor.fetchone()[0]

    def _new_value_sql(self, column):
        """The value a present column writes over the customer's current one (c.<column>)."""
        if column == "email_marketing":  # never resubscribes (see _resubscribes_ignore)
            return f"CASE WHEN c.unsubscribed_at IS NOT NULL AND {_bool_sql(column)} THEN c.{column} ELSE COALESCE({_bool_sql(column)}, c.{column}) END"
        if column in BOOL_COLUMNS:
            return f"COALESCE({_bool_sql(column)}, c.{column})"
        if column == "unsubscribed_at":
            return "COALESCE(NULLIF(s.unsubscribed_at, '')::timestamptz, c.unsubscribed_at)"
        if column == "attributes":
            return "c.attributes || COALESCE(s.attributes::jsonb, '{}'::jsonb)"
        return f"COALESCE(NULLIF(s.{column}, ''), c.{column})"

    def _update_existing(self, cursor):
        columns = [column for column in COLUMNS if column in self.present and column not in ("email", "tags")]
        cursor.execute(
            f"UPDATE {STAGING} s SET customer_id = c.id FROM {self.customers} c WHERE c.email = s.email"
        )
        matched = cursor.rowcount
        if not matched:
            return
        if "email_marketing" in self.present:
            self._resubscribes_ignore(cursor)
        if not columns:
            self.report.unchanged += matched
            return
        news = ", ".join(f"{self._new_value_sql(column)} AS n_{column}" for column in columns)
        olds = ", ".join(f"c.{column} AS o_{column}" for column in columns)
        sets = ", ".join(f"{column} = src.n_{column}" for column in columns)
        differs = " OR ".join(f"src.n_{column} IS DISTINCT FROM src.o_{column}" for column in columns)
        changed = ", ".join(
            f"CASE WHEN src.n_{column} IS DISTINCT FROM src.o_{column} THEN '{column}' END"
            for column in columns
        )
        cursor.execute(
            f"""
            WITH src AS (
                SELECT c.id, {news}, {olds} FROM {STAGING} s JOIN {self.customers} c ON c.id = s.customer_id
            ), upd AS (
                UPDATE {self.customers} c SET {sets}, updated_at = now() FROM src
                 WHERE c.id = src.id AND ({differs})
                RETURNING c.id, array_remove(ARRAY[{changed}]::text[], NULL) AS changed
            )
            INSERT INTO {TOUCHED} (id, created, changed) SELECT id, false, changed FROM upd
            """
        )
        self.report.updated += cursor.rowcount
        self.report.unchanged += matched - cursor.rowcount

    def _resubscribes_ignore(self, cursor):
        """Rows saying email_marketing true for customers who unsubscribed: the update leaves the
        field alone (_new_value_sql); each is recorded on the customer, as customer_update does."""
        before, _, after = RESUBSCRIBE_IGNORED.partition("{date}")
        cursor.execute(
            f"""
            INSERT INTO {Interaction._meta.db_table} (customer_id, kind, body, data, occurred_at, created_at)
            SELECT c.id, 'resubscribe_ignored',
                   %(before)s || to_char(c.unsubscribed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || %(after)s,
                   %(data)s::jsonb, now(), now()
              FROM {STAGING} s JOIN {self.customers} c ON c.id = s.customer_id
             WHERE c.unsubscribed_at IS NOT NULL AND NOT c.email_marketing AND {_bool_sql("email_marketing")}
            """,
            {
                "before": before.format(source=IMPORT_SOURCE),
                "after": after,
                "data": json.dumps({"source": IMPORT_SOURCE, "fields": ["email_marketing"]}),
            },
        )
        if cursor.rowcount:
            logger.info("import: resubscribe ignored for %s customers who unsubscribed", cursor.rowcount)
            self.report.resubscribes_ignored += cursor.rowcount

    def _insert_new(self, cursor):
        text = [column for column in TEXT_COLUMNS if column != "external_id"]
        insert = f"""
            INSERT INTO {self.customers} (email, external_id, {", ".join(text)}, country, attributes,
                email_marketing, email_transactional, unsubscribed_at, total_spent, order_count,
                created_at, updated_at)
            SELECT s.email, NULLIF(s.external_id, ''), {", ".join(f"COALESCE(s.{c}, '')" for c in text)},
                COALESCE(s.country, ''), COALESCE(s.attributes::jsonb, '{{}}'::jsonb),
                COALESCE({_bool_sql("email_marketing")}, false), COALESCE({_bool_sql("email_transactional")}, true),
                NULLIF(s.unsubscribed_at, '')::timestamptz, 0, 0, now(), now()
              FROM {STAGING} s
             WHERE s.customer_id IS NULL  -- set by _update_existing for every known email
        """

        def run(on_conflict):
            sql = insert + (" ON CONFLICT DO NOTHING" if on_conflict else "")
            # The created customers feed the events and the tags step (a new customer's tags are no
            # "update"), which finds them by email here (updating the staging rows' customer_id instead
            # cost 10% of the insert).
            if self.emit_events or "tags" in self.present or on_conflict:
                sql = (
                    f"WITH ins AS ({sql} RETURNING id, email) INSERT INTO {TOUCHED} (id, created, changed, email) "
                    f"SELECT id, true, '{{}}', email FROM ins"
                )
            cursor.execute(sql)

        # Fast path: a plain INSERT (speculative ON CONFLICT insertion costs ~20% at a million rows).
        # Only a concurrent writer taking one of these emails or external_ids makes it fail; then the
        # chunk's insert runs again skipping those rows, and they are reported, not lost silently.
        try:
            with transaction.atomic():
                run(on_conflict=False)
            self.report.created += cursor.rowcount
            return
        except IntegrityError:
            pass
        run(on_conflict=True)
        self.report.created += cursor.rowcount
        # The rows the insert skipped have no customer: their email or external_id was taken meanwhile.
        cursor.execute(
            f"INSERT INTO {ERRORS} (line, reason) SELECT s.line, 'conflicts with a customer written during the import; "
            f"import this row again' FROM {STAGING} s WHERE s.customer_id IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {TOUCHED} t WHERE t.created AND t.email = s.email)"
        )
        if cursor.rowcount:
            cursor.execute(f"DELETE FROM {STAGING} s USING {ERRORS} e WHERE s.line = e.line")

    def _add_tags(self, cursor):
        cursor.execute(
            f"""
            INSERT INTO {self.tags} (name, created_at)
            SELECT DISTINCT ON (lower(btrim(t.name))) btrim(t.name), now()
              FROM {STAGING} s CROSS JOIN LATERAL unnest(string_to_array(s.tags, ',')) AS t(name)
             WHERE s.tags <> '' AND btrim(t.name) <> ''
            ON CONFLICT ((lower(name))) DO NOTHING
            """
        )
        cursor.execute(
            f"""
            WITH added AS (
                INSERT INTO {self.customer_tags} (customer_id, tag_id, created_at)
                SELECT DISTINCT COALESCE(s.customer_id, new.id), g.id, now()
                  FROM {STAGING} s
                  LEFT JOIN {TOUCHED} new ON new.created AND new.email = s.email
                 CROSS JOIN LATERAL unnest(string_to_array(s.tags, ',')) AS t(name)
                  JOIN {self.tags} g ON lower(g.name) = lower(btrim(t.name))
                 WHERE s.tags <> '' AND btrim(t.name) <> '' AND COALESCE(s.customer_id, new.id) IS NOT NULL
                ON CONFLICT DO NOTHING
                RETURNING customer_id
            ), customers AS (SELECT DISTINCT customer_id AS id FROM added),
            marked AS (
                INSERT INTO {TOUCHED} (id, created, changed) SELECT id, false, ARRAY['tags'] FROM customers
                ON CONFLICT (id) DO UPDATE SET changed = {TOUCHED}.changed || ARRAY['tags']
                    WHERE NOT {TOUCHED}.created  -- a created customer's tags are no change: no row rewritten
                RETURNING id, (xmax = 0) AS fresh
            )
            UPDATE {self.customers} c SET updated_at = now() FROM marked WHERE c.id = marked.id AND marked.fresh
            """
        )
        # Customers whose only change is a new tag were counted as unchanged above.
        self.report.updated += cursor.rowcount
        self.report.unchanged -= cursor.rowcount

    def _note_changed(self):
        """The chunk's created and changed customers, for flows' segment triggers: one statement that
        reads them from the touched table, never a list of 50,000 ids through Python (the import's
        rows/s is a benchmark). Without events a plain insert leaves created customers out of that
        table (see _insert_new); flows' sweep takes them in, as it did any import before."""
        touched = Customer.objects.filter(id__in=RawSQL(f"SELECT id FROM {TOUCHED}", [])).values("id")
        hooks.customers_changed_note(customer_ids=touched)

    def _emit_events(self, cursor):
        # One compact outbox row per thousand changed customers; the publisher renders each customer's
        # event from it (customers.outbox). Building a million payloads here cost more than the import.
        outbox.batch_rows_insert(cursor, touched_table=TOUCHED)
        outbox_kick()  # publish right after this chunk commits, not at the next beat


def import_customers_csv(*, path_or_file, progress=None, chunk_rows=CHUNK_ROWS, emit_events=True):
    """Import customers from a CSV file (a path, or a binary file object) into the current tenant.

    `progress(bytes_done, bytes_total, report)` is called after each chunk. Returns an ImportReport;
    raises ImportFileError when the file as a whole cannot be imported (then nothing is written).
    `emit_events=False` skips the customer.created/updated events (an initial load of a customer base
    that downstream consumers already have); the default emits them like every other write.
    """
    importer = _Importer(progress=progress, chunk_rows=chunk_rows, emit_events=emit_events)
    if isinstance(path_or_file, str | Path):
        path = Path(path_or_file)
        with path.open("rb") as binary:
            return importer.run(binary, path.stat().st_size)
    binary = path_or_file
    if isinstance(binary, io.TextIOBase):
        raise TypeError("Open the file in binary mode ('rb').")
    total = getattr(binary, "size", None) or _remaining_size(binary)
    return importer.run(binary, total)


def _remaining_size(binary):
    try:
        position = binary.tell()
        end = binary.seek(0, io.SEEK_END)
        binary.seek(position)
        return end - position
    except (OSError, AttributeError, ValueError):
        return 0
