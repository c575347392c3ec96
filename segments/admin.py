"""The marketers' segment editor: a visual rule builder with a live count, static member lists.

Writes go through segments.services, reads through segments.selectors (STYLE 2); the builder saves
the same react-querybuilder JSON as the API.
"""

import json
import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from unfold.admin import ModelAdmin, TabularInline
from unfold.widgets import UnfoldAdminTextareaWidget

from . import hooks, selectors, services
from .models import Segment, SegmentMember
from .rules import FIELDS, RuleError, field_catalogue

PREVIEW_MAX_BYTES = 1024 * 1024 + 1024
SUGGESTIONS = 20
_RULE_PATH = re.compile(r"^((?:rules\[\d+\]\.?)+)(?:\.?(field|operator|value|combinator|not))?: (.*)$", re.S)
_PART_WORDS = {
    "field": _("field"),
    "operator": _("condition"),
    "value": _("value"),
    "combinator": _("and/or"),
}


def _rule_at(rules, indexes):
    node = rules
    for index in indexes:
        children = node.get("rules") if isinstance(node, dict) else None
        if not isinstance(children, list) or index >= len(children):
            return None
        node = children[index]
    return node if isinstance(node, dict) else None


def rule_error_words(message, rules):
    """'rules[1].rules[0].value: not a number' -> 'Rule 2.1 (Total spent), value: not a number'."""
    match = _RULE_PATH.match(message)
    if not match:
        return "Rules: " + message[len("rules: ") :] if message.startswith("rules: ") else message
    indexes = [int(i) for i in re.findall(r"\[(\d+)\]", match.group(1))]
    node = _rule_at(rules, indexes) if isinstance(rules, dict) else None
    kind = _("Group") if isinstance(node, dict) and "rules" in node else _("Rule")
    where = f"{kind} {'.'.join(str(i + 1) for i in indexes)}"
    spec = FIELDS.get(node.get("field")) if isinstance(node, dict) else None
    if spec is not None:
        where += f" ({spec.label})"
    part = _PART_WORDS.get(match.group(2) or "")
    detail = match.group(3)
    if spec is not None:
        detail = detail.replace(f"for {spec.name}", f"for {spec.label}")
    return f"{where}{', ' + str(part) if part else ''}: {detail}"


class RuleBuilderWidget(UnfoldAdminTextareaWidget):
    """The raw JSON textarea, wrapped by the visual builder (segments/static/segments/builder.js)."""

    template_name = "admin/segments/segment/rule_builder_widget.html"

    def __init__(self, attrs=None, preview_url="", sentence_url=""):
        super().__init__(attrs={"rows": 12, "spellcheck": "false", **(attrs or {})})
        self.preview_url = preview_url
        self.sentence_url = sentence_url

    class Media:
        js = ["segments/builder.js"]
        css = {"all": ["segments/builder.css"]}

    def format_value(self, value):
        if value in (None, ""):
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["builder"] = {
            "catalogue": field_catalogue(),
            "preview_url": self.preview_url,
            "suggest_url": reverse("admin:segments_segment_suggest"),
            "sentence_url": self.sentence_url,
        }
        return context


class SegmentForm(forms.ModelForm):
    description = forms.CharField(
        required=False, max_length=services.MAX_DESCRIPTION_LENGTH, widget=UnfoldAdminTextareaWidget
    )
    rules = forms.JSONField(
        required=False,
        label=_("Rules"),
        help_text=_("Built above; the JSON is the API's format, for developers."),
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "rules"]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or (self.instance.kind if self.instance.pk else "dynamic")
        if kind == "static":
            # The builder is hidden for a static segment: whatever it held is not the marketer's input.
            self._errors.pop("rules", None)
            cleaned["rules"] = None
        elif "rules" in cleaned:
            if cleaned["rules"] is None:
                self.add_error("rules", _("A dynamic segment needs at least one rule."))
            else:
                try:
                    services.rules_validate(cleaned["rules"])
                except ValidationError as error:
                    for message in error.message_dict.get("rules", []):
                        self.add_error("rules", rule_error_words(message, cleaned["rules"]))
        return cleaned


class SegmentMemberInline(TabularInline):
    model = SegmentMember
    fields = ["customer", "added_at"]
    readonly_fields = ["added_at"]
    autocomplete_fields = ["customer"]
    extra = 0
    per_page = 50
    verbose_name = _("member")
    verbose_name_plural = _("members (a static segment's customers)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer").order_by("-added_at", "-id")


@admin.register(Segment)
class SegmentAdmin(ModelAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "count_display", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    ordering = ["name", "id"]
    actions = ["freeze_selected", "refresh_counts"]
    list_per_page = 50
    change_form_template = "admin/segments/segment/change_form.html"

    class Media:
        css = {"all": ["segments/builder.css"]}

    def get_inlines(self, request, obj):
        return [SegmentMemberInline] if obj is not None and obj.kind == "static" else []

    def get_deleted_objects(self, objs, request):
        """A segment a scheduled campaign or a live flow still needs shows as protected: the admin's
        delete page (one or the bulk action) names why and refuses, as the API's 409 does."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for segment in objs:
            protected.extend(
                f"{segment.name}: {reason}" for reason in services.segment_delete_refusals(segment=segment)
            )
        return deleted, model_count, perms_needed, protected

    def get_fields(self, request, obj=None):
        if obj is not None and obj.kind == "static":
            return ["name", "description", "kind"]
        return ["name", "description", "kind", "rules"]

    def get_readonly_fields(self, request, obj=None):
        return ["kind"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "rules" in form.base_fields:
            form.base_fields["rules"].widget = RuleBuilderWidget(
                preview_url=reverse("admin:segments_segment_preview"),
                sentence_url=_sentence_url(),
            )
        return form

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="segments_segment_preview",
            ),
            path(
                "suggest/",
                self.admin_site.admin_view(self.suggest_view),
                name="segments_segment_suggest",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("customers"))
    def count_display(self, segment):
        counted = selectors.segment_count_cached(segment=segment)
        if counted is None:
            return "—"
        if counted["count"] is None:
            return format_html('<span title="{}">{}</span>', _("The stored rules no longer compile."), "!")
        return counted["count"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["segment_count"] = selectors.segment_count(
                segment=obj, refresh=request.GET.get("refresh") == "true"
            )
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                services.segment_update(
                    segment=obj,
                    name=data["name"],
                    description=data.get("description", ""),
                    **({"rules": data["rules"]} if obj.kind == "dynamic" else {}),
                )
            else:
                created = services.segment_create(
                    name=data["name"],
                    description=data.get("description", ""),
                    kind=data["kind"],
                    rules=data.get("rules"),
                )
                obj.pk = created.pk
                obj.refresh_from_db()
        except ValidationError as error:  # form.clean already validated; this is a race at most
            raise PermissionDenied(" ".join(error.messages))

    def save_formset(self, request, form, formset, change):
        if formset.model is not SegmentMember:
            return super().save_formset(request, form, formset, change)
        add, remove = [], []
        for member_form in formset.forms:
            if not member_form.has_changed() and not formset._should_delete_form(member_form):
                continue
            original = member_form.instance.customer_id if member_form.instance.pk else None
            if formset._should_delete_form(member_form):
                if original:
                    remove.append(original)
                continue
            customer = member_form.cleaned_data.get("customer")
            if customer is None or customer.pk == original:
                continue
            if original:
                remove.append(original)
            add.append(customer.pk)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if add or remove:
            result = services.segment_members_change(
                segment=form.instance, add=sorted(set(add)), remove=sorted(set(remove) - set(add))
            )
            messages.info(request, _("%(added)d added, %(removed)d removed.") % result)

    @admin.action(description=_("Save the current result as a static segment"), permissions=["add"])
    def freeze_selected(self, request, queryset):
        for segment in queryset:
            try:
                with transaction.atomic():
                    frozen = services.segment_freeze(segment=segment)
            except ValidationError as error:
                self.message_user(request, f"{segment}: {' '.join(error.messages)}", messages.ERROR)
                continue
            self.message_user(request, _("Saved “%(name)s”.") % {"name": frozen.name}, messages.SUCCESS)

    @admin.action(description=_("Recount the customers"), permissions=["view"])
    def refresh_counts(self, request, queryset):
        for segment in queryset:
            selectors.segment_count(segment=segment, refresh=True)
        self.message_user(request, _("Counted."), messages.SUCCESS)

    def suggest_view(self, request):
        """?field=&q= -> {"values": [{"value", "label"}]}: the builder's value suggestions, from the
        tenant's own data (prefix matches, at most 20)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        field = request.GET.get("field", "")
        query = request.GET.get("q", "").strip()[:100]
        if field in hooks.value_suggesters:
            pairs = hooks.value_suggesters[field](query)[:SUGGESTIONS]
        else:
            pairs = [
                (value, value)
                for value in selectors.value_suggestions(field=field, query=query, limit=SUGGESTIONS)
            ]
        return JsonResponse({"values": [{"value": value, "label": label} for value, label in pairs]})

    def preview_view(self, request):
        """Live count for the builder: POST {"rules": ...} (session + CSRF) -> count and a sample."""
        return _preview(request, self)


def _sentence_url():
    """The endpoint that turns a sentence into rules, when a higher app registered one (segments.hooks)."""
    for name in hooks.sentence_endpoints:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


@require_POST
def _preview(request, model_admin):
    if not model_admin.has_view_permission(request):
        return JsonResponse({"errors": ["You may not view segments."]}, status=403)
    if len(request.body) > PREVIEW_MAX_BYTES:
        return JsonResponse({"errors": ["rules: larger than 1 MB"]}, status=400)
    try:
        payload = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        return JsonResponse({"errors": ["The rules are not valid JSON."]}, status=400)
    if not isinstance(payload, dict) or "rules" not in payload:
        return JsonResponse({"errors": ['Send {"rules": ...}.']}, status=400)
    try:
        preview = selectors.segment_preview(rules=payload["rules"])
    except RuleError as error:
        return JsonResponse(
            {
                "errors": error.messages,
                "messages": [rule_error_words(message, payload["rules"]) for message in error.messages],
            },
            status=400,
        )
    return JsonResponse(
        {
            "count": preview["count"],
            "milliseconds": preview["milliseconds"],
            "sample": [
                {
                    "id": customer.id,
                    "email": customer.email,
                    "name": customer.full_name,
                    "url": reverse("admin:customers_customer_change", args=[customer.id]),
                }
                for customer in preview["sample"]
            ],
        }
    )
