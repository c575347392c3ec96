"""The sandboxed template renderer: Django's template language over plain data, nothing else.

Why Django's engine and not Jinja2's sandbox: PRODUCT.md promises marketers Django's syntax exactly,
and Django's language is already a small, logic-light one. What makes it a sandbox here:

- a dedicated `Engine` whose only library is a whitelist of tags and filters (no `load`, `include`,
  `extends`, `debug`, `csrf_token`, `url`, `lorem`, ...), so a template cannot reach other templates,
  template libraries, settings or the request;
- the context holds only `Data` mappings, tuples and scalars built from the documented values:
  a `Data` has no public attributes or methods, so `{{ customer.delete }}` or `{{ customer.keys }}`
  resolve to nothing, and Django itself refuses any name starting with an underscore (`__class__`) at
  parse time. Model instances, querysets and settings never enter a context.

A sandbox that only limits what a template can *reach* still lets it burn a worker: a loop over a
big value inside a loop over it, a `{% with %}` chain that doubles a string, `ljust:"999999999"`.
So every template also has limits (settings `TEMPLATE_*`, see crm_project/settings.py):

- at save time: the size of each source, and `{% for %}` nesting (TEMPLATE_MAX_LOOP_DEPTH), refused
  with the line like a syntax error, plus a trial render against sample values that must stay within
  the render budget (a bomb built from literals never reaches a send);
- at render time, a budget per message: steps (each loop pass, each node and each filter call is
  one), characters of each rendered part, the size of every filter result, and a wall-clock
  deadline as the backstop for what the counts miss. Over it, rendering stops at once with
  `RenderLimitExceeded`, a ValidationError naming the field and line: a 400 at preview, a failed
  recipient with the reason during a send.

Sizes are known before anything is built. A check of a filter's result comes too late: with a 2 MB
`s`, `s|slice:":4000"|make_list|join:s` asks for 8 GB in one allocation and the check never runs.
So every allowed filter has a forecast (`FORECASTS`: its output's size from its inputs, exact where
that is cheap, else an upper bound) or is known to build nothing larger than its inputs
(`NO_GROWTH`); a filter in neither table is not available at all, so a filter a new Django adds is
not let in unexamined. A call whose forecast is over the budget is refused before it runs; so is a
`{% for %}` over more items than the steps left, a `{% now %}` whose format could expand past the
budget, and a variable whose escaped text would. What is built is then never more than the budget
(2 MB of text, or a list of as many items as the steps allow) plus its HTML escaping.

One narrow entry point each: `compile_message` / `render_message` to render, `template_errors` /
`validate_sources` to validate at save time, `customer_context` / `order_context` / `sample_context`
to build the documented values.
"""

import functools
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import html2text
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import (
    Context,
    Engine,
    Library,
    TemplateDoesNotExist,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import TextNode, VariableNode, render_value_in_context
from django.template.defaulttags import ForNode, NowNode
from django.utils.formats import localize
from django.utils.safestring import SafeData
from django.utils.timezone import template_localtime

# Tags a marketer may use. Everything else (load, include, extends, block, debug, csrf_token, url,
# lorem, querystring, ...) is a syntax error at save time.
ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
# Filters: all of Django's built-ins work on plain data; `pprint` is the one that exists for debugging.
DENIED_FILTERS = {"pprint"}
# Filters whose argument is a width or precision: `ljust:"999999999"` is refused for its argument
# alone (see also FORECASTS).
SIZED_FILTERS = {"ljust", "rjust", "center", "stringformat", "floatformat"}
MAX_FILTER_PRECISION = 1000
# A filter that works on inputs this large checks the clock before and after (the step count assumes
# cheap steps: 256 of them between two looks at the clock could each chew 2 MB).
LARGE_INPUT = 64 * 1024

# Whatever reaches the parser at all (the per-field limits of validate_sources are far below it;
# a campaign's HTML with tracked links rewritten is compiled again at send time, so not those).
MAX_SOURCE_LENGTH = 4 * 1024 * 1024


def limits():
    """The template limits in force (settings, read per call: tests and a changed environment see them)."""
    return {
        "subject": settings.TEMPLATE_MAX_SUBJECT_CHARS,
        "html_body": settings.TEMPLATE_MAX_HTML_BYTES,
        "text_body": settings.TEMPLATE_MAX_TEXT_BYTES,
        "loop_depth": settings.TEMPLATE_MAX_LOOP_DEPTH,
        "steps": settings.TEMPLATE_RENDER_MAX_STEPS,
        "chars": settings.TEMPLATE_RENDER_MAX_CHARS,
        "seconds": settings.TEMPLATE_RENDER_MAX_SECONDS,
    }


class RenderFailed(ValidationError):
    """A render that stopped: `{field: ["Line N: why"]}`, so callers that handle a broken template
    (preview 400, test send, transactional failure) handle this one too. Raised as it is when a tag
    or filter fails on the values given (`{% widthratio a b 'x' %}`): never a 500 at preview."""

    def __init__(self, field, message):
        super().__init__({field: [message]})
        self.field = field
        self.reason = message

    def __str__(self):
        return f"{self.field}: {self.reason}"


class RenderLimitExceeded(RenderFailed):
    """A render went over its budget (and stopped before building what would have crossed it)."""


class _OverBudget(Exception):
    def __init__(self, reason, line=None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


class _Budget:
    """What one message's render may still spend (shared by its parts; characters count per part)."""

    __slots__ = ("steps", "max_steps", "max_items", "chars", "max_chars", "deadline", "seconds")

    def __init__(self):
        values = limits()
        self.steps = 0
        self.max_steps = values["steps"]
        # A list longer than the steps left could never be walked: no filter may build a longer one.
        self.max_items = values["steps"]
        self.chars = 0
        self.max_chars = values["chars"]
        self.seconds = values["seconds"]
        self.deadline = time.monotonic() + self.seconds

    def spend(self):
        self.steps += 1
        # Not the clock at every step: it is the backstop, the step count the rule.
        if self.steps > self.max_steps or not self.steps & 0xFF:
            self.check()

    def check(self):
        if self.steps > self.max_steps:
            raise self.too_much_work()
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"rendering took longer than {self.seconds:g} seconds.")

    def too_much_work(self):
        return _OverBudget(
            f"the template does too much work (more than {self.max_steps} steps: each loop pass, "
            "tag, variable and filter counts one); loop over fewer items or nest fewer loops."
        )

    def emit(self, size):
        self.chars += size
        if self.chars > self.max_chars:
            raise _OverBudget(f"the rendered text would be longer than {self.max_chars} characters.")

    def will_emit(self, size):
        """Refuse output of `size` characters before it is built."""
        if self.chars + size > self.max_chars:
            raise _OverBudget(f"the rendered text would be longer than {self.max_chars} characters.")

    def will_build(self, name, forecast):
        """Refuse a filter call whose forecast ("characters" or "items", size) is over the budget."""
        unit, size = forecast
        if unit == "items" and size > self.max_items:
            raise _OverBudget(
                f"the filter '{name}' would make a list of up to {size} items "
                f"(at most {self.max_items} are allowed)."
            )
        if unit == "characters" and size > self.max_chars:
            raise _OverBudget(
                f"the filter '{name}' would make a value of up to {size} characters "
                f"(at most {self.max_chars} are allowed)."
            )

    def check_value(self, name, value):
        if isinstance(value, str | tuple | list) and len(value) > self.max_chars:
            raise _OverBudget(
                f"the filter '{name}' would make a value longer than {self.max_chars} characters."
            )


# The budget of the render in progress in this thread (None outside CompiledMessage.render: the
# nodes then render as Django's would).
_BUDGET = ContextVar("template_render_budget", default=None)


# --- what a filter would build, known before it builds it ------------------------------------------
# Sizes in characters of text (or items of a list). Exact where a count over the input is cheap (the
# escapes), else an upper bound from the filter's worst case per input character (measured over all
# of Unicode for the case mappings and NFKD, over hostile tokens for urlize). A bound may refuse an
# absurd but harmless call (urlize over 200 KB of text); it never lets a big one through.

_HTML_ESCAPE_GROWTH = {"&": 4, "<": 3, ">": 3, '"': 5, "'": 5}  # django.utils.html.escape
_JS_ESCAPED = dict.fromkeys([*range(32), *map(ord, "\\'\"<>&=-;`"), 0x2028, 0x2029])  # escapejs
_DATE_FORMAT_GROWTH = 40  # the longest output of one date format character ('r', 'c': ~32)
_URLIZE_GROWTH = 16  # 'www.' then emoji: each percent-encoded in the href and shown too (~13)
_CASE_GROWTH = 3  # str.upper('ΐ') is three characters; nothing in Unicode maps to more
_SLUG_GROWTH = 5  # NFKD of U+33AF is five ASCII characters; nothing decomposes to more


def _big_int(text):
    """int(text) for a width or precision, without Python's 4300-digit refusal (huge is huge)."""
    digits = text.lstrip("0")
    return int(digits or "0") if len(digits) < 19 else 10**19


def _text_size(value):
    """An upper bound of len(str(value)) for what a template can hold, without building it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Data):
        return 0
    if isinstance(value, tuple | list):  # str() of a sequence is its repr
        return 2 + sum(_repr_size(item) + 2 for item in value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    return len(str(value))  # floats, dates: short


def _repr_size(value):
    if isinstance(value, str):
        return 10 * len(value) + 2  # a non-printable character's repr is up to '\\U0001xxxx'
    if isinstance(value, Data):
        return len("Data()")
    return _text_size(value)


def _escaped_size(value):
    """len(escape(str(value))), exact for text."""
    if isinstance(value, str):
        return len(value) + sum(value.count(char) * extra for char, extra in _HTML_ESCAPE_GROWTH.items())
    return 6 * _text_size(value)


def _shown_size(value, autoescape):
    """len(conditional_escape(value)) when escaping, len(str(value)) when not."""
    if not autoescape or isinstance(value, SafeData):
        return _text_size(value)
    return _escaped_size(value)


def _newlines(text):
    return text.count("\n") + text.count("\r")


def _as_text(value):
    return value if isinstance(value, str) else None


def _chars(size):
    return ("characters", size)


def _forecast_add(value, arg, autoescape):
    if isinstance(value, str) and isinstance(arg, str):
        return _chars(len(value) + len(arg))  # (digits add as numbers: smaller still)
    if isinstance(value, tuple | list) and isinstance(arg, tuple | list):
        return ("items", len(value) + len(arg))
    return None  # numbers, or a mix that renders empty


def _forecast_padded(value, arg, autoescape):
    return _chars(max(_text_size(value), _big_int(str(arg).strip().lstrip("+-"))))


def _forecast_join(value, arg, autoescape):
    if isinstance(value, str):  # joins its characters
        items, count = _shown_size(value, autoescape), len(value)
    elif isinstance(value, tuple | list | Data):
        count = len(value)
        items = sum(_shown_size(item, autoescape) for item in value)
    else:
        return None  # not a sequence: join gives the value back
    return _chars(items + _shown_size(arg, autoescape) * max(count - 1, 0))


def _forecast_stringformat(value, arg, autoescape):
    # "%" + arg: widths and precisions are numbers in it; the value itself at most its text.
    numbers = sum(_big_int(number) for number in re.findall(r"\d+", str(arg)))
    return _chars(_text_size(value) + numbers + 64)


def _forecast_date(value, arg, autoescape):
    return _chars(_DATE_FORMAT_GROWTH * _text_size(arg) + 64)


def _forecast_escapejs(value, arg, autoescape):
    text = _as_text(value)
    if text is None:
        return _chars(6 * _text_size(value))
    return _chars(len(text) + 5 * (len(text) - len(text.translate(_JS_ESCAPED))))


def _forecast_linebreaks(value, arg, autoescape):
    # Each newline becomes "<br>" or a paragraph break "</p>\n\n<p>".
    text = str(value) if not isinstance(value, tuple | list | Data) else None
    if text is None:
        return _chars(12 * _text_size(value) + 8)
    return _chars(_shown_size(text, autoescape) + 8 * _newlines(text) + 8)


def _forecast_linebreaksbr(value, arg, autoescape):
    text = str(value) if not isinstance(value, tuple | list | Data) else None
    if text is None:
        return _chars(9 * _text_size(value))
    return _chars(_shown_size(text, autoescape) + 3 * _newlines(text))


def _forecast_linenumbers(value, arg, autoescape):
    text = str(value) if not isinstance(value, tuple | list | Data) else None
    if text is None:
        return _chars(16 * _text_size(value))
    lines = text.count("\n") + 1
    return _chars(_shown_size(text, autoescape) + (len(str(lines)) + 2) * lines)


def _forecast_unordered_list(value, arg, autoescape, depth=1):
    """Each item is indented by its depth, wrapped in <li>...</li>, a nested list in <ul> lines."""
    if not isinstance(value, str | tuple | list | Data):
        return _chars(6 * _text_size(value))
    size = 0
    for item in value:
        if isinstance(item, tuple | list):
            size += _forecast_unordered_list(item, arg, autoescape, depth + 1)[1] + 4 * depth + 16
        else:
            size += _shown_size(item, autoescape) + depth + 16
    return _chars(size)


def _forecast_wordwrap(value, arg, autoescape):
    # Lines break on spaces they replace; only tabs grow (expanded to at most 8 spaces).
    text = str(value) if not isinstance(value, tuple | list | Data) else None
    if text is None:
        return _chars(8 * _text_size(value))
    return _chars(len(text) + 7 * text.count("\t"))


def _forecast_each(transform):
    """A filter whose output is each input character mapped to at most `transform` characters."""

    def forecast(value, arg, autoescape):
        return _chars(transform * _text_size(value) + 16)

    return forecast


def _forecast_percent_encoded(value, arg, autoescape):
    text = _as_text(value)
    per_char = 3 if text is not None and text.isascii() else 12  # %XX per UTF-8 byte
    return _chars(per_char * _text_size(value))


# Filters that build something larger than their inputs: name -> forecast(value, arg, autoescape).
FORECASTS = {
    "add": _forecast_add,
    "addslashes": _forecast_each(2),
    "capfirst": _forecast_each(_CASE_GROWTH),
    "center": _forecast_padded,
    "ljust": _forecast_padded,
    "rjust": _forecast_padded,
    "date": _forecast_date,
    "time": _forecast_date,
    "escape": lambda value, arg, autoescape: _chars(_escaped_size(value)),
    "force_escape": lambda value, arg, autoescape: _chars(_escaped_size(value)),
    "escapejs": _forecast_escapejs,
    # (a list of as many items as the value has, each escaped or marked safe)
    "escapeseq": lambda value, arg, autoescape: _chars(
        sum(_shown_size(item, True) for item in value) if isinstance(value, str | tuple | list) else 0
    ),
    "safeseq": lambda value, arg, autoescape: _chars(
        sum(_text_size(item) for item in value) if isinstance(value, str | tuple | list) else 0
    ),
    "floatformat": lambda value, arg, autoescape: _chars(
        _text_size(value) + 2 * (_big_int("".join(re.findall(r"\d", str(arg)))) + 200)
    ),
    "iriencode": _forecast_percent_encoded,
    "urlencode": _forecast_percent_encoded,
    "join": _forecast_join,
    "json_script": lambda value, arg, autoescape: _chars(12 * _text_size(value) + 6 * _text_size(arg) + 64),
    "linebreaks": _forecast_linebreaks,
    "linebreaksbr": _forecast_linebreaksbr,
    "linenumbers": _forecast_linenumbers,
    "lower": _forecast_each(_CASE_GROWTH),
    "upper": _forecast_each(_CASE_GROWTH),
    "title": _forecast_each(_CASE_GROWTH),
    "make_list": lambda value, arg, autoescape: ("items", _text_size(value)),
    "slugify": _forecast_each(_SLUG_GROWTH),
    "stringformat": _forecast_stringformat,
    # Truncation keeps the text, adds an ellipsis and, for HTML, closes what it left open.
    "truncatechars": _forecast_each(1),
    "truncatewords": _forecast_each(1),
    "truncatechars_html": _forecast_each(3),
    "truncatewords_html": _forecast_each(3),
    "unordered_list": _forecast_unordered_list,
    "urlize": _forecast_each(_URLIZE_GROWTH),
    "urlizetrunc": _forecast_each(_URLIZE_GROWTH),
    "wordwrap": _forecast_wordwrap,
}
# Filters whose result is no larger than their inputs (a part of the value, a number, a short text,
# one of the arguments, or the same items in another order).
NO_GROWTH = {
    "cut",
    "default",
    "default_if_none",
    "dictsort",
    "dictsortreversed",
    "divisibleby",
    "filesizeformat",
    "first",
    "get_digit",
    "last",
    "length",
    "phone2numeric",
    "pluralize",
    "random",
    "safe",
    "slice",
    "striptags",
    "timesince",
    "timeuntil",
    "wordcount",
    "yesno",
}


def _input_size(value):
    return len(value) if isinstance(value, str | tuple | list) else 0


def _budgeted_filter(name, func):
    forecast = FORECASTS.get(name)

    @functools.wraps(func)  # keeps is_safe / needs_autoescape / the signature Django checks
    def budgeted(value, *args, **kwargs):
        budget = _BUDGET.get()
        if budget is None:
            return func(value, *args, **kwargs)
        budget.spend()
        if name in SIZED_FILTERS and args:
            cap = MAX_FILTER_PRECISION if name == "floatformat" else budget.max_chars
            if any(_big_int(number) > cap for number in re.findall(r"\d+", str(args[0]))):
                raise _OverBudget(f"the filter '{name}' was given a width or precision above {cap}.")
        if forecast is not None:
            expected = forecast(value, args[0] if args else None, kwargs.get("autoescape", False))
            if expected is not None:
                budget.will_build(name, expected)
        large = _input_size(value) > LARGE_INPUT
        if large:
            budget.check()
        result = func(value, *args, **kwargs)
        if large or _input_size(result) > LARGE_INPUT:
            budget.check()
        budget.check_value(name, result)
        return result

    return budgeted


def _sandbox_library():
    library = Library()
    for name in ALLOWED_TAGS:
        library.tags[name] = defaulttags.register.tags[name]
    for name, func in defaultfilters.register.filters.items():
        # A filter nobody has looked at (in neither table) is not let in.
        if name not in DENIED_FILTERS and (name in FORECASTS or name in NO_GROWTH):
            library.filters[name] = _budgeted_filter(name, func)
    return library


class _SandboxEngine(Engine):
    default_builtins = []

    def __init__(self):
        super().__init__(
            dirs=[], app_dirs=False, loaders=[], libraries={}, builtins=[], autoescape=True, debug=True
        )
        # Replaces Django's default builtins (defaulttags, defaultfilters, loader_tags) wholesale.
        self.template_builtins = [_sandbox_library()]

    def find_template(self, name, dirs=None, skip=None):  # no template can name another one
        raise TemplateDoesNotExist(name)


_ENGINE = None


def _engine():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _SandboxEngine()
    return _ENGINE


class Data:
    """A read-only mapping for templates: keys resolve, nothing else does (no methods, no attributes)."""

    __slots__ = ("_values",)

    def __init__(self, values):
        self._values = values

    def __getitem__(self, key):
        return self._values[key]

    def __contains__(self, key):
        return key in self._values

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __bool__(self):
        return bool(self._values)

    def __str__(self):
        return ""

    def __repr__(self):
        return "Data()"


def plain(value):
    """JSON-like data made safe for a template: dicts become `Data`, lists tuples, scalars stay."""
    if isinstance(value, dict):
        return Data({str(key): plain(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(plain(item) for item in value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None or isinstance(value, str | int | float | bool | datetime | date):
        return value
    return str(value)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def html_to_text(html):
    converter = html2text.HTML2Text()
    converter.body_width = 0  # never wrap: a wrapped URL breaks in mail clients
    converter.ignore_images = True
    converter.protect_links = True
    return converter.handle(html).strip() + "\n"


def _line(node):
    token = getattr(node, "token", None)
    return getattr(token, "lineno", None)


class _CountedValues:
    """A loop's values that spend a step per pass (an empty loop body over a big value still costs)."""

    __slots__ = ("values", "budget")

    def __init__(self, values, budget):
        self.values = values
        self.budget = budget

    def __len__(self):
        return len(self.values)

    def __iter__(self):
        for item in self.values:
            self.budget.spend()
            yield item

    def __reversed__(self):
        for item in reversed(self.values):
            self.budget.spend()
            yield item


class _CountedSequence:
    """Stands in for a `{% for %}` node's sequence expression; only ForNode.render resolves it."""

    __slots__ = ("expression",)

    def __init__(self, expression):
        self.expression = expression

    def resolve(self, context, ignore_failures=False):
        values = self.expression.resolve(context, ignore_failures=ignore_failures)
        budget = _BUDGET.get()
        if values is None or budget is None:
            return values
        if not hasattr(values, "__len__"):
            values = list(values)
        # Every pass costs a step: a loop over more items than the steps left can never finish.
        if len(values) > budget.max_steps - budget.steps:
            raise budget.too_much_work()
        return _CountedValues(values, budget)

    def __str__(self):
        return str(self.expression)


def _budgeted_render(node, leaf):
    render = node.render_annotated
    line = _line(node)

    # The sender's hot path: this runs for most nodes of every message, so it is kept flat.
    def render_annotated(context):
        budget = _BUDGET.get()
        if budget is None:
            return render(context)
        try:
            budget.steps += 1
            if budget.steps > budget.max_steps or not budget.steps & 0xFF:
                budget.check()
            output = render(context)
            if leaf:  # what a template emits is the sum of its leaves; containers would count it twice
                budget.chars += len(output)
                if budget.chars > budget.max_chars:
                    budget.emit(0)
        except _OverBudget as exc:
            if exc.line is None:  # the innermost node names the line
                exc.line = line
            raise
        return output

    return render_annotated


def _budgeted_variable(node):
    """VariableNode.render, with the size of the escaped text known before it is built (escaping can
    make a value six times longer)."""
    expression = node.filter_expression

    def render(context):
        try:
            value = expression.resolve(context)
        except UnicodeDecodeError:
            return ""
        budget = _BUDGET.get()
        if budget is not None:
            value = localize(template_localtime(value, use_tz=context.use_tz), use_l10n=context.use_l10n)
            budget.will_emit(_shown_size(value, context.autoescape))
        return render_value_in_context(value, context)

    return render


def _budgeted_now(node):
    """NowNode.render, refused before it formats when its format could expand past the budget."""
    render = node.render

    def budgeted(context):
        budget = _BUDGET.get()
        if budget is not None:
            budget.will_emit(_DATE_FORMAT_GROWTH * len(node.format_string))
        return render(context)

    return budgeted


def _children(node):
    for attr in node.child_nodelists:
        nodelist = getattr(node, attr, None)
        if nodelist:
            yield nodelist


def _too_deep(nodelist, depth, max_depth):
    """The first `{% for %}` nested deeper than max_depth, or None."""
    for node in nodelist:
        level = depth + isinstance(node, ForNode)
        if level > max_depth:
            return node
        for child in _children(node):
            found = _too_deep(child, level, max_depth)
            if found is not None:
                return found
    return None


def _instrument(nodelist, in_loop):
    for node in nodelist:
        children = list(_children(node))
        # Static text outside loops renders once, so its cost and size are bounded by the source's:
        # left as it is (most of an HTML template's nodes, and a third of the render time if wrapped).
        if in_loop or not isinstance(node, TextNode):
            node.render_annotated = _budgeted_render(node, leaf=not children)
        if isinstance(node, VariableNode):
            node.render = _budgeted_variable(node)
        elif isinstance(node, NowNode):
            node.render = _budgeted_now(node)
        if isinstance(node, ForNode):
            node.sequence = _CountedSequence(node.sequence)
        for child in children:
            _instrument(child, in_loop or isinstance(node, ForNode))


def _parse(source):
    """Compile and instrument: nodes spend from the render budget; loops count their passes."""
    template = _engine().from_string(source)
    _instrument(template.nodelist, in_loop=False)
    return template


def _compile(source, field):
    if len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError({field: [f"is too long (at most {MAX_SOURCE_LENGTH} characters)."]})
    try:
        template = _parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationError({field: [_describe(exc, source)]})
    max_depth = limits()["loop_depth"]
    too_deep = _too_deep(template.nodelist, 0, max_depth)
    if too_deep is not None:
        raise ValidationError(
            {
                field: [
                    f"Line {_line(too_deep)}: {{% for %}} loops are nested more than {max_depth} deep; "
                    "nest fewer loops."
                ]
            }
        )
    return template


def _describe(exc, source):
    debug = getattr(exc, "template_debug", None)
    line = debug["line"] if debug else None
    message = str(exc).replace(
        "Did you forget to register or load this tag?", "That tag is not available in email templates."
    )
    if line is None:
        return f"Template syntax error: {message}"
    return f"Line {line}: {message}"


def template_errors(source):
    """The syntax errors of one template source, each naming its line; [] when it compiles."""
    try:
        _compile(source or "", "template")
    except ValidationError as exc:
        return exc.message_dict["template"]
    return []


def _size_error(field, source):
    limit = limits().get(field)
    if limit is None or not source:
        return None
    if field == "subject":  # a header line: RFC 5322 counts characters
        if len(source) > limit:
            return f"is too long: {len(source)} characters, at most {limit}."
        return None
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limit:
        return f"is too large: {_kb(size)}, at most {_kb(limit)}."
    return None


def _kb(size):
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def _trial_context():
    return {
        "customer": sample_context(),
        "campaign": {"name": "Sample"},
        "order": sample_order_context(),
        "unsubscribe_url": "https://example.com/u/sample",
        "preferences_url": "https://example.com/p/sample",
        "web_version_url": "https://example.com/v/sample",
        "crm_links": {},
    }


def validate_sources(**sources):
    """Raise ValidationError({field: ["Line N: ..."]}) for every source (by field name) that is too
    large, does not parse, or renders over the budget against sample values."""
    errors = {}
    compiled = {}
    for field, source in sources.items():
        too_large = _size_error(field, source or "")
        if too_large:
            errors[field] = [too_large]
            continue  # not parsed: a 50 MB body costs nothing more than its length
        try:
            compiled[field] = _compile(source or "", field)
        except ValidationError as exc:
            errors[field] = exc.message_dict[field]
    if compiled and not errors:
        # Only the budget counts here: a filter that fails on sample values (`divisibleby:0`) renders
        # empty-handed for real data too, but it is not this check's business.
        context = Context({key: plain(value) for key, value in _trial_context().items()}, autoescape=True)
        for field, template in compiled.items():
            try:
                _render_part(template, context, field, _Budget())
            except RenderLimitExceeded as exc:
                errors[field] = [exc.reason]
            except RenderFailed:
                continue
    if errors:
        raise ValidationError(errors)


def _render_part(template, context, field, budget):
    token = _BUDGET.set(budget)
    budget.chars = 0
    try:
        return template.render(context)
    except _OverBudget as exc:
        where = f"Line {exc.line}: " if exc.line else ""
        raise RenderLimitExceeded(field, f"{where}{exc.reason}") from None
    except Exception as exc:
        debug = getattr(exc, "template_debug", None)
        where = f"Line {debug['line']}: " if debug else ""
        raise RenderFailed(field, f"{where}{type(exc).__name__}: {exc}"[:1000]) from exc
    finally:
        _BUDGET.reset(token)


class CompiledMessage:
    """A message's templates compiled once, rendered per recipient (the sender's hot path)."""

    def __init__(self, *, subject, html, text=""):
        self.subject = _compile(subject or "", "subject")
        self.html = _compile(html or "", "html_body")
        self.text = None
        self.text_from_html = not (text or "").strip()
        if not self.text_from_html:
            self.text = _compile(text, "text_body")
        else:
            # Convert the HTML *template* once instead of every rendered message: html2text is slow and
            # leaves `{{ }}`/`{% %}` alone; when the conversion does not compile, fall back per message.
            try:
                self.text = _parse(html_to_text(html or ""))
            except TemplateSyntaxError:
                self.text = None

    def render(self, context):
        """Raises RenderLimitExceeded (a ValidationError naming the field and line) over the budget."""
        # One Context for the three parts (only the escaping differs): a Context is costly to build.
        ctx = Context({key: plain(value) for key, value in context.items()}, autoescape=True)
        budget = _Budget()
        html = _render_part(self.html, ctx, "html_body", budget)
        ctx.autoescape = False
        subject = _render_part(self.subject, ctx, "subject", budget)
        if self.text is not None:
            text = _render_part(self.text, ctx, "text_body", budget)
        else:
            text = html_to_text(html)
        # A subject is one header line: folded whitespace would break it.
        subject = re.sub(r"\s+", " ", subject).strip()
        return Rendered(subject=subject, html=html, text=text)


def compile_message(*, subject, html, text=""):
    return CompiledMessage(subject=subject, html=html, text=text)


def render_message(*, subject, html, text="", context):
    """Render one message. Raises ValidationError naming the field and line when a source does not parse."""
    return compile_message(subject=subject, html=html, text=text).render(context)


def customer_context(customer):
    """`customer.*` as PRODUCT.md documents it, from a Customer (or anything with those attributes)."""
    first = getattr(customer, "first_name", "") or ""
    last = getattr(customer, "last_name", "") or ""
    return {
        "first_name": first,
        "last_name": last,
        "full_name": " ".join(part for part in (first, last) if part),
        "email": getattr(customer, "email", "") or "",
        "city": getattr(customer, "city", "") or "",
        "country": getattr(customer, "country", "") or "",
        "attributes": dict(getattr(customer, "attributes", None) or {}),
    }


def order_context(order, items=None):
    """`order.*` for transactional templates: number, total, currency, status and items."""
    if items is None:
        items = list(order.items.all())
    return {
        "number": order.number or "",
        "total": format(order.total, "f"),
        "currency": order.currency or "",
        "status": order.status or "",
        "placed_at": order.placed_at,
        "items": [
            {
                "sku": item.sku,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": format(item.unit_price, "f"),
                "total": format(item.unit_price * item.quantity, "f"),
            }
            for item in items
        ],
    }


def sample_order_context():
    """`order.*` for a trial render or preview of a transactional template."""
    return {
        "number": "1001",
        "total": "59.80",
        "currency": "EUR",
        "status": "paid",
        "placed_at": datetime(2026, 1, 2, 10, 30),
        "items": [
            {"sku": "TEA-1", "name": "Green tea", "quantity": 2, "unit_price": "9.90", "total": "19.80"},
            {"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": "40.00", "total": "40.00"},
        ],
    }


def sample_context():
    """Values for a preview or test send without a real customer."""
    return {
        "first_name": "Alex",
        "last_name": "Sample",
        "full_name": "Alex Sample",
        "email": "alex.sample@example.com",
        "city": "Budapest",
        "country": "HU",
        "attributes": {},
    }
