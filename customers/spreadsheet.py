"""Cells of our CSV files as spreadsheets read them: what the export guards, the import reads back.

A spreadsheet evaluates a cell that starts like a formula, and a formula can call functions
(HYPERLINK, WEBSERVICE) or other programs (DDE): "CSV injection". The export therefore makes such a
cell text the way spreadsheets do, with a leading apostrophe, and only such a cell:

- a value starting with `=`, `@`, a tab or a carriage return is always guarded;
- a value starting with `+` or `-` is guarded unless it is nothing but a number or a phone number:
  digits, spaces and `. , ( ) / + -` (`+36 1 234 5678`, `-12.50`, `+1 (555) 010-9999`). Such a value
  can name no function and no cell, so at worst a spreadsheet shows it as arithmetic, and a guard
  would only corrupt it for every other reader;
- a value starting with an apostrophe is guarded when the rest would be (`'=x` becomes `''=x`), so
  a value's own leading apostrophe survives the round trip.

The import reads a cell back with `unguard`: one leading apostrophe is dropped exactly when the rest
is something `guard` would have guarded. So `unguard(guard(v)) == v` for every value, and a hand-made
file's `'t Hooft` stays as it is.
"""

import re

_ALWAYS = ("=", "@", "\t", "\r")
_NUMBER_OR_PHONE = re.compile(r"[+-][0-9 .,()/+-]*")


def needs_guard(value):
    if not value:
        return False
    if value.startswith(_ALWAYS):
        return True
    if value[0] in "+-":
        return _NUMBER_OR_PHONE.fullmatch(value) is None
    if value[0] == "'":
        return needs_guard(value[1:])
    return False


def guard(value):
    """The cell for a text value in an exported CSV."""
    return "'" + value if needs_guard(value) else value


def unguard(cell):
    """The value of a cell that `guard` may have written."""
    if cell.startswith("'") and needs_guard(cell[1:]):
        return cell[1:]
    return cell
