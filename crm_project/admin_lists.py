"""The admin's change lists render what is the same on every row once per page, not once per row.

django-unfold's `items_for_result` rebuilds every column header (sort links, query strings) for each
row to label the cells on small screens: 50 rows of 11 columns built 561 headers, about 40% of the
customer list's server time. The headers of one change list are the same for all its rows, so they
are built once per ChangeList and reused (the rows only read their "text").

Likewise a yes/no cell rendered a template per row for one of three icons (per language), and the
row's selection checkbox a widget template per row that differs only by the primary key: both are
rendered once and reused (the key escaped into the copy).
"""

import functools

from django.contrib.admin import helpers
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from unfold import admin as unfold_admin
from unfold import utils as unfold_utils
from unfold.templatetags import unfold_list

_result_headers = unfold_list.result_headers
_boolean_icon = unfold_utils._boolean_icon
_action_checkbox = unfold_admin.ModelAdmin.action_checkbox
PK_MARK = "\x00pk\x00"


def result_headers_once(cl):
    headers = getattr(cl, "_headers_once", None)
    if headers is None:
        headers = cl._headers_once = list(_result_headers(cl))
    return iter(headers)


@functools.lru_cache(maxsize=32)
def _boolean_icon_in(state, language):
    return _boolean_icon(state)


def boolean_icon_once(value):
    state = None if value in ("", None) else bool(value)
    return _boolean_icon_in(state, get_language())


@functools.lru_cache(maxsize=16)
def _checkbox_html(language):
    return unfold_admin.checkbox.render(helpers.ACTION_CHECKBOX_NAME, PK_MARK)  # its label is translated


def action_checkbox_once(self, obj):
    return mark_safe(_checkbox_html(get_language()).replace(PK_MARK, escape(str(obj.pk))))


functools.update_wrapper(action_checkbox_once, _action_checkbox)  # its column header and description


def install():
    """Called once at start-up (CrmProjectConfig.ready)."""
    unfold_list.result_headers = result_headers_once
    unfold_utils._boolean_icon = boolean_icon_once
    unfold_admin.ModelAdmin.action_checkbox = action_checkbox_once
