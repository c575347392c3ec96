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

One narrow entry point each: `compile_message` / `render_message` to render, `template_errors` /
`validate_sources` to validate at save time, `customer_context` / `order_context` / `sample_context`
to build the documented values.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import html2text
from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags

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

MAX_SOURCE_LENGTH = 500_000


def _sandbox_library():
    library = Library()
    for name in ALLOWED_TAGS:
        library.tags[name] = defaulttags.register.tags[name]
    for name, func in defaultfilters.register.filters.items():
        if name not in DENIED_FILTERS:
            library.filters[name] = func
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
        from django.template import TemplateDoesNotExist

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


def _compile(source, field):
    if len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError({field: [f"is too long (at most {MAX_SOURCE_LENGTH} characters)."]})
    try:
        return _engine().from_string(source)
    except TemplateSyntaxError as exc:
        raise ValidationError({field: [_describe(exc, source)]})


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


def validate_sources(**sources):
    """Raise ValidationError({field: ["Line N: ..."]}) for every source (by field name) that does not parse."""
    errors = {}
    for field, source in sources.items():
        messages = template_errors(source)
        if messages:
            errors[field] = messages
    if errors:
        raise ValidationError(errors)


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
                self.text = _engine().from_string(html_to_text(html or ""))
            except TemplateSyntaxError:
                self.text = None

    def render(self, context):
        # One Context for the three parts (only the escaping differs): a Context is costly to build.
        ctx = Context({key: plain(value) for key, value in context.items()}, autoescape=True)
        html = self.html.render(ctx)
        ctx.autoescape = False
        subject = self.subject.render(ctx)
        text = self.text.render(ctx) if self.text is not None else html_to_text(html)
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
