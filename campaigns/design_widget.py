"""The block editor in the admin's template and campaign forms (one form field, `design`).

The field is a textarea holding the design's JSON, wrapped by the editor
(static/campaigns/design/editor.js: Editor.js with our block tools, vendored under vendor/). The
editor keeps the textarea current, compiles the design on the server as it changes (the admin's
design preview URL) and writes the compiled HTML and text into the form's html_body and text_body, so
every other preview of the form shows the design too. The server compiles it again on save.
"""

import json

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse

from tenancy.models import BRAND_FONTS

from .design import MAX_DESIGN_BYTES, design_parse
from .design_recipes import RECIPES

# The Variables menu: what a marketer can insert into texts and links.
VARIABLES = [
    ("First name (or “there”)", '{{ customer.first_name|default:"there" }}'),
    ("First name", "{{ customer.first_name }}"),
    ("Last name", "{{ customer.last_name }}"),
    ("Full name", "{{ customer.full_name }}"),
    ("Email", "{{ customer.email }}"),
    ("City", "{{ customer.city }}"),
    ("Campaign name", "{{ campaign.name }}"),
    ("Web version link", "{{ web_version_url }}"),
    ("Unsubscribe link", "{{ unsubscribe_url }}"),
    ("Preferences link", "{{ preferences_url }}"),
]


class DesignEditorWidget(forms.Textarea):
    template_name = "admin/campaigns/design/editor.html"

    class Media:
        js = [
            "campaigns/design/vendor/editorjs-2.31.7.umd.js",
            "campaigns/design/vendor/editorjs-drag-drop-1.1.16.js",
            "campaigns/design/editor.js",
        ]
        css = {"all": ["campaigns/design/editor.css"]}

    def format_value(self, value):
        if value in (None, ""):
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["design"] = {
            "preview_url": reverse("admin:campaigns_emailtemplate_design_preview"),
            "test_url": reverse("admin:campaigns_emailtemplate_design_test"),
            "variables": [{"label": label, "code": code} for label, code in VARIABLES],
            "fonts": list(BRAND_FONTS),
            "recipes": {name: recipe["design"] for name, recipe in RECIPES.items()},
            "recipe_choices": [(name, recipe["label"]) for name, recipe in RECIPES.items()],
        }
        return context


class DesignField(forms.CharField):
    """The editor's JSON: parsed (size checked first) into a dict, or None for a raw HTML template.
    The blocks themselves are validated when the service compiles them."""

    widget = DesignEditorWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Design")
        kwargs.setdefault(
            "help_text",
            "Built with the block editor; empty for a raw HTML template (the HTML and text fields below).",
        )
        super().__init__(max_length=MAX_DESIGN_BYTES, strip=True, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return design_parse(value)
        except ValidationError as error:
            raise ValidationError(error.message_dict["design"])

    def has_changed(self, initial, data):
        try:
            return self.to_python(data) != (
                initial if not isinstance(initial, str) else design_parse(initial)
            )
        except ValidationError:
            return True
