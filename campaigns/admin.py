"""The marketers' admin for templates, campaigns, recipients and suppressions (django-unfold).

Thin: forms validate through the services, buttons call the same services as the API, every state
change is a POST behind a confirmation page, and a refused change is a message, never an error page.
Stable DOM ids for browser tests are listed in the templates under templates/admin/campaigns/.
"""

from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from core.admin import ReadOnlyMixin
from core.widgets import (
    LocalDateTimeInput,
    local_input_value,
    next_quarter_hour_plus_hour,
    parse_local_datetime,
)
from customers.admin import PROFILE_TIMELINE_PROVIDERS
from customers.models import Customer
from customers.pagination import EstimatingPaginator
from customers.selectors import customers_search
from segments.models import Segment

from . import abtests, editing, email_templates, lifecycle, proofs, readiness, selectors, senders
from .admin_abtests import ABTestFormMixin, variant_from_form
from .content import design_apply
from .design_widget import DesignField
from .lifecycle import CampaignStateError
from .models import Campaign, CampaignRecipient, EmailTemplate, SenderDomain, Suppression

STATUS_COLOURS = {
    "draft": "#6b7280",
    "scheduled": "#2563eb",
    "sending": "#d97706",
    "paused": "#9333ea",
    "sent": "#16a34a",
    "cancelled": "#6b7280",
    "failed": "#dc2626",
}


# What a marketer reads where the API says a field's key.
FIELD_LABELS = {
    "scheduled_at": _("Send at"),
    "html_body": _("HTML body"),
    "text_body": _("Text body"),
    "from_email": _("From address"),
    "from_name": _("From name"),
    "reply_to": _("Reply-To"),
    "exclude_segment": _("Exclude segment"),
}


def _status_badge(obj, *, css_class, colours):
    """An object's status as a coloured word (its value in data-status, for the page's scripts)."""
    return format_html(
        '<span class="{}" data-status="{}" style="color:{};font-weight:600">{}</span>',
        css_class,
        obj.status,
        colours.get(obj.status, "#6b7280"),
        obj.get_status_display(),
    )


def field_label(model, name):
    """The label a person sees for a model field (or an error key): never the API key."""
    if name in FIELD_LABELS:
        return str(FIELD_LABELS[name])
    try:
        return str(capfirst(model._meta.get_field(name).verbose_name))
    except FieldDoesNotExist:
        return str(capfirst(name.replace("_", " ")))


def _errors_to_form(form, error):
    for field, messages_ in error.message_dict.items():
        target = field if field in form.fields else None
        for message in messages_:
            if target is None and field != "__all__":
                message = f"{field_label(form._meta.model, field)}: {message}"
            form.add_error(target, message)


def _tz_name():
    return timezone.get_current_timezone_name()


def _find_customer(value):
    """A customer by id or email, for previews; None when empty or unknown."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return Customer.objects.filter(pk=int(value)).first()
    return Customer.objects.filter(email=value.lower()).first()


CUSTOMER_PICKER_LIMIT = 10


def customer_picker_results(query):
    """Up to 10 customers matching every word of `query` in their email or name (the preview's picker).

    The customer list's own search (customers.selectors.customers_search, a trigram index): it
    answers while the person types, at any size."""
    query = (query or "").strip()
    if len(query) < 3:
        return []
    rows = customers_search(
        Customer.objects.filter(erased_at__isnull=True, email__isnull=False), term=query
    ).values("id", "email", "first_name", "last_name")[:CUSTOMER_PICKER_LIMIT]
    return [
        {
            "id": row["id"],
            "email": row["email"],
            "name": " ".join(part for part in (row["first_name"], row["last_name"]) if part),
        }
        for row in rows
    ]


def sender_summary(campaign):
    """The From a campaign goes out with and where each part comes from (campaign, settings, platform)."""
    tenant = connection.tenant
    effective = selectors.campaign_sender(campaign=campaign, tenant=tenant)
    if campaign.from_email:
        email_source = "campaign"
    elif getattr(tenant, "from_email", ""):
        email_source = "settings"
    else:
        email_source = "platform"
    if campaign.from_name:
        name_source = "campaign"
    elif getattr(tenant, "from_name", ""):
        name_source = "settings"
    else:
        name_source = "none"
    return {**effective, "email_source": email_source, "name_source": name_source}


SENDER_SOURCES = {
    "campaign": _("set on this campaign"),
    "settings": _("from the account's settings"),
    "platform": _("the platform's default address: set your own sender in Settings"),
    "none": _("no name: only the address shows"),
}


def _split_emails(value):
    return [
        item.strip() for item in (value or "").replace(";", ",").replace("\n", ",").split(",") if item.strip()
    ]


def compile_design_into(data):
    """A form's design compiled into its html_body and text_body (as the service does on save), so
    the checks that follow see the content that will be sent. Raises ValidationError on `design`."""
    if data.get("design"):
        values = {"design": data["design"]}
        design_apply(values)
        data["html_body"], data["text_body"] = values["html_body"], values["text_body"]


# --- templates ---------------------------------------------------------------------------------------


class EmailTemplateForm(forms.ModelForm):
    design = DesignField()

    class Meta:
        model = EmailTemplate
        fields = ["name", "kind", "key", "subject", "design", "html_body", "text_body"]

    def clean(self):
        data = super().clean()
        try:
            compile_design_into(data)
            email_templates.template_validate(
                kind=data.get("kind"),
                key=data.get("key") or None,
                subject=data.get("subject", ""),
                html_body=data.get("html_body", ""),
                text_body=data.get("text_body", ""),
                instance=self.instance if self.instance.pk else None,
            )
        except ValidationError as error:
            _errors_to_form(self, error)
        return data


@admin.register(EmailTemplate)
class EmailTemplateAdmin(ModelAdmin):
    form = EmailTemplateForm
    list_display = ["name", "kind", "key", "subject", "updated_at", "preview_link"]
    list_filter = ["kind"]
    search_fields = ["name", "subject"]
    change_form_after_template = "admin/campaigns/emailtemplate/preview_link.html"

    @admin.display(description=_("Preview"))
    def preview_link(self, obj):
        url = reverse("admin:campaigns_emailtemplate_preview", args=[obj.pk])
        return format_html('<a href="{}" id="template-preview-link-{}">{}</a>', url, obj.pk, _("Preview"))

    def save_model(self, request, obj, form, change):
        values = {field: form.cleaned_data.get(field) for field in form.Meta.fields}
        if change:
            email_templates.template_update(template=obj, **values)
        else:
            saved = email_templates.template_create(**values)
            obj.pk = saved.pk

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="campaigns_emailtemplate_preview",
            ),
            path(
                "design-test/",
                self.admin_site.admin_view(self.design_test_view),
                name="campaigns_emailtemplate_design_test",
            ),
            path(
                "design-preview/",
                self.admin_site.admin_view(self.design_preview_view),
                name="campaigns_emailtemplate_design_preview",
            ),
        ] + super().get_urls()

    def design_test_view(self, request):
        """POST design, subject, name, emails -> {"results": [{"email", "sent", "error"}]} or {"errors"}."""
        if request.method != "POST" or not (
            self.has_change_permission(request) or request.user.has_perm("campaigns.change_campaign")
        ):
            raise PermissionDenied
        try:
            results = proofs.design_test_send(
                design=request.POST.get("design", ""),
                subject=request.POST.get("subject", ""),
                name=request.POST.get("name", ""),
                emails=_split_emails(request.POST.get("emails")),
            )
        except ValidationError as error:
            return JsonResponse({"errors": error.message_dict})
        return JsonResponse({"errors": {}, "results": results})

    def design_preview_view(self, request):
        """POST design (the editor's JSON), subject, customer -> compiled html/text and the rendered
        message as JSON; {"errors": {...}} naming the problem (200: the editor shows it)."""
        if request.method != "POST" or not (
            self.has_view_permission(request) or request.user.has_perm("campaigns.view_campaign")
        ):
            raise PermissionDenied
        customer = _find_customer(request.POST.get("customer"))
        try:
            compiled, rendered = email_templates.design_preview(
                design=request.POST.get("design", ""),
                subject=request.POST.get("subject", ""),
                customer=customer,
                campaign_name=request.POST.get("name", ""),
                kind="transactional" if request.POST.get("kind") == "transactional" else "marketing",
            )
        except ValidationError as error:
            return JsonResponse({"errors": error.message_dict})
        return JsonResponse(
            {
                "errors": {},
                "html_body": compiled["html"],
                "text_body": compiled["text"],
                "warnings": compiled["warnings"],
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "customer": customer.email if customer else None,
            }
        )

    def preview_view(self, request, pk):
        """Rendered against a chosen customer (or sample values); POST sends a test copy."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = get_object_or_404(EmailTemplate, pk=pk)
        customer_query = request.GET.get("customer", "")
        customer = _find_customer(customer_query)
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            try:
                results = proofs.template_test_send(
                    template=template, emails=_split_emails(request.POST.get("emails"))
                )
                _report_test_send(request, results)
            except ValidationError as error:
                messages.error(request, " ".join(m for ms in error.message_dict.values() for m in ms))
            return redirect(request.get_full_path())
        rendered, error = None, ""
        try:
            rendered = email_templates.template_preview(
                subject=template.subject,
                html_body=template.html_body,
                text_body=template.text_body,
                customer=customer,
                kind=template.kind,
            )
        except ValidationError as exc:
            error = " ".join(m for ms in exc.message_dict.values() for m in ms)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Preview: %(name)s") % {"name": template.name},
            "opts": self.model._meta,
            "original": template,
            "template_obj": template,
            "rendered": rendered,
            "preview_error": error,
            "customer": customer,
            "customer_query": customer_query,
            "customer_not_found": bool(customer_query.strip()) and customer is None,
        }
        return TemplateResponse(request, "admin/campaigns/emailtemplate/preview.html", context)


def _report_test_send(request, results):
    for result in results:
        if result["sent"] and result.get("variant"):
            messages.success(
                request,
                _("Test copy of variant %(variant)s sent to %(email)s.")
                % {"variant": result["variant"], "email": result["email"]},
            )
        elif result["sent"]:
            messages.success(request, _("Test copy sent to %(email)s.") % {"email": result["email"]})
        else:
            messages.error(
                request,
                _("Test copy to %(email)s failed: %(error)s")
                % {"email": result["email"], "error": result["error"]},
            )


# --- campaigns ---------------------------------------------------------------------------------------


class CampaignForm(ABTestFormMixin, forms.ModelForm):
    design = DesignField()
    # Declared: the admin's own date-time field is a split one that ignores a single-input widget.
    scheduled_at = forms.DateTimeField(required=False, widget=LocalDateTimeInput(), label=_("Send at"))

    class Meta:
        model = Campaign
        fields = [
            "name",
            "template",
            "subject",
            "design",
            "html_body",
            "text_body",
            "segment",
            "exclude_segment",
            "from_email",
            "from_name",
            "reply_to",
            "track_opens",
            "track_clicks",
            "scheduled_at",
        ]
        labels = {key: value for key, value in FIELD_LABELS.items() if key != "exclude_segment"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        defaults = sender_summary(Campaign())
        if "from_email" in self.fields:
            self.fields["from_email"].widget.attrs["placeholder"] = defaults["from_email"]
            self.fields["from_email"].help_text = _("Empty: %(email)s (%(source)s).") % {
                "email": defaults["from_email"],
                "source": SENDER_SOURCES[defaults["email_source"]],
            }
        if "from_name" in self.fields and defaults["from_name"]:
            self.fields["from_name"].widget.attrs["placeholder"] = defaults["from_name"]
            self.fields["from_name"].help_text = _("Empty: %(name)s (%(source)s).") % {
                "name": defaults["from_name"],
                "source": SENDER_SOURCES[defaults["name_source"]],
            }
        if "template" in self.fields:
            self.fields["template"].queryset = EmailTemplate.objects.filter(kind="marketing")
            self.fields["template"].help_text = _(
                "The subject and bodies below, when filled, override the template's."
            )
        if "scheduled_at" in self.fields:
            self.fields["scheduled_at"].help_text = _(
                "In %(zone)s. Saved with the campaign; use “Schedule” to schedule it. Changing it "
                "reschedules a scheduled campaign."
            ) % {"zone": _tz_name()}

    def clean(self):
        data = super().clean()
        try:
            compile_design_into(data)
        except ValidationError as error:
            _errors_to_form(self, error)
            return data
        probe = Campaign(**{field: data.get(field) for field in self.Meta.fields if field in data})
        try:
            # The sender is checked when it is set or changed (editing.campaign_validate says why).
            editing.campaign_validate(
                campaign=probe, check_sender=not self.instance.pk or "from_email" in self.changed_data
            )
            if data.get("exclude_segment") and data.get("exclude_segment") == data.get("segment"):
                raise ValidationError({"exclude_segment": ["Cannot be the segment itself."]})
            scheduled_at = data.get("scheduled_at")
            if scheduled_at and scheduled_at <= timezone.now() and "scheduled_at" in self.changed_data:
                raise ValidationError(
                    {"scheduled_at": [_("Must be in the future (now is %(now)s %(zone)s).") % _now_words()]}
                )
        except ValidationError as error:
            _errors_to_form(self, error)
        self.ab_cleaned = self.clean_ab()
        return data


def _now_words():
    return {"now": timezone.localtime().strftime("%Y-%m-%d %H:%M"), "zone": _tz_name()}


ACTIONS = {
    # name: (service, label, target state, from states)
    "send": (lifecycle.campaign_send_now, _("Send now"), "sending", ("draft", "scheduled")),
    "schedule": (lifecycle.campaign_schedule, _("Schedule"), "scheduled", ("draft",)),
    "pause": (lifecycle.campaign_pause, _("Pause"), "paused", ("sending",)),
    "resume": (lifecycle.campaign_resume, _("Resume"), "sending", ("paused",)),
    "cancel": (
        lifecycle.campaign_cancel,
        _("Cancel campaign"),
        "cancelled",
        ("draft", "scheduled", "sending", "paused"),
    ),
}


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    form = CampaignForm
    list_display = [
        "name",
        "status_badge",
        "intent_display",
        "segment",
        "scheduled_at",
        "sent_at",
        "progress_summary",
    ]
    list_filter = ["status", "intent"]
    search_fields = ["name", "subject"]
    date_hierarchy = "created_at"
    change_form_outer_before_template = "admin/campaigns/campaign/top.html"
    change_form_outer_after_template = "admin/campaigns/campaign/panel.html"
    # Inside the form: the A/B test's variants, metric and wait (campaigns/admin_abtests.py).
    change_form_after_template = "admin/campaigns/campaign/ab_test.html"

    def get_queryset(self, request):
        return super().get_queryset(request).listed()  # a flow step's carrier lives in its flow

    def has_delete_permission(self, request, obj=None):
        # A campaign that went out is history (recipients, stats): only drafts and cancelled ones go.
        if obj is not None and obj.status not in ("draft", "cancelled"):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a bulk delete would not ask per campaign
        return actions

    fieldsets = [
        (_("Content"), {"fields": ["name", "template", "subject", "design", "html_body", "text_body"]}),
        (_("Audience"), {"fields": ["segment", "exclude_segment"]}),
        (_("Sender"), {"fields": ["effective_sender", "from_email", "from_name", "reply_to"]}),
        (_("Tracking and schedule"), {"fields": ["track_opens", "track_clicks", "scheduled_at"]}),
        (_("State"), {"fields": ["status", "error", "started_at", "sent_at", "intent", "intent_confidence"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        state = [
            "effective_sender",
            "status",
            "error",
            "started_at",
            "sent_at",
            "intent",
            "intent_confidence",
        ]
        if obj is not None and obj.status not in lifecycle.EDITABLE_STATUSES:
            return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]
        return state

    def has_change_permission(self, request, obj=None):
        # A campaign that started is a read-only view (no Save buttons); its actions (pause, resume,
        # cancel) are their own pages and ask for the change permission without an object.
        if obj is not None and obj.status not in lifecycle.EDITABLE_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description=_("Goes out from"))
    def effective_sender(self, obj):
        sender = sender_summary(obj if obj is not None else Campaign())
        name = sender["from_name"]
        shown = f"{name} <{sender['from_email']}>" if name else sender["from_email"]
        settings_link = ""
        if sender["email_source"] != "campaign":
            try:
                settings_link = reverse("admin:tenant_settings")
            except Exception:  # the settings page is optional
                settings_link = ""
        return format_html(
            '<span id="campaign-effective-from" data-source="{}" class="font-semibold">{}</span>'
            ' <span id="campaign-effective-from-source" class="text-sm {}">— {}{}</span>',
            sender["email_source"],
            shown,
            "text-red-600" if sender["email_source"] == "platform" else "text-base-500",
            SENDER_SOURCES[sender["email_source"]],
            format_html(' · <a class="text-primary-600" href="{}">{}</a>', settings_link, _("Settings"))
            if settings_link
            else "",
        )

    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj, css_class="campaign-status", colours=STATUS_COLOURS)

    @admin.display(description=_("Intent"), ordering="intent")
    def intent_display(self, obj):
        return format_html(
            '<span class="campaign-intent" data-intent="{}" title="{}">{}</span>',
            obj.intent,
            _("confidence %(c)s") % {"c": f"{obj.intent_confidence:.0%}"},
            obj.get_intent_display(),
        )

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class CampaignChangeList(base):
            def get_results(self, request):
                # The page's progress column in one statement, not one count per row.
                super().get_results(request)
                started = [c for c in self.result_list if c.status not in ("draft", "scheduled")]
                progress = selectors.campaigns_progress(campaigns=started)
                for campaign in started:
                    campaign.progress_counted = progress[campaign.pk]

        return CampaignChangeList

    @admin.display(description=_("Progress"))
    def progress_summary(self, obj):
        if obj.status in ("draft", "scheduled"):
            return "—"
        progress = getattr(obj, "progress_counted", None) or selectors.campaign_progress(campaign=obj)
        return f"{progress['done']}/{progress['total']} ({progress['percent']}%)"

    def save_model(self, request, obj, form, change):
        values = {
            field: form.cleaned_data.get(field) for field in form.Meta.fields if field in form.cleaned_data
        }
        if not form.fields["ab_enabled"].disabled:
            values["variants"], values["ab_test"] = form.ab_cleaned
        if change:
            editing.campaign_update(campaign=obj, **values)
        else:
            saved = editing.campaign_create(**values)
            obj.pk = saved.pk

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = Campaign.objects.filter(pk=object_id).first()
        extra_context = {**(extra_context or {}), **(self._panel_context(campaign) if campaign else {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), **self._panel_context(None)}
        return super().add_view(request, form_url, extra_context)

    def _panel_context(self, campaign):
        context = {
            "panel_preview_url": reverse("admin:campaigns_campaign_live_preview"),
            "panel_audience_url": reverse("admin:campaigns_campaign_audience"),
            "panel_customers_url": reverse("admin:campaigns_campaign_customers"),
            "panel_campaign": campaign,
            "panel_variant_keys": abtests.VARIANT_KEYS,
        }
        if campaign is None:
            return context
        context.update(
            {
                "panel_progress": selectors.campaigns_progress(campaigns=[campaign])[campaign.pk],
                "panel_progress_url": reverse("admin:campaigns_campaign_progress", args=[campaign.pk]),
                "panel_recipients_url": reverse("admin:campaigns_campaignrecipient_changelist")
                + f"?campaign__id__exact={campaign.pk}",
                "panel_test_url": reverse("admin:campaigns_campaign_test", args=[campaign.pk]),
                "panel_test_variants": [variant["key"] for variant in campaign.variants or []],
                "panel_actions": [
                    {
                        "name": name,
                        "label": label,
                        "url": reverse("admin:campaigns_campaign_action", args=[campaign.pk, name]),
                    }
                    for name, (_service, label, _to, sources) in ACTIONS.items()
                    if campaign.status in sources and name != "cancel"
                ],
                # Away from the primary action, named for what it does: it ends the campaign.
                "panel_cancel_url": reverse("admin:campaigns_campaign_action", args=[campaign.pk, "cancel"])
                if campaign.status in ACTIONS["cancel"][3]
                else "",
                "panel_stats_url": _stats_url(campaign),
            }
        )
        return context

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("live-preview/", view(self.live_preview_view), name="campaigns_campaign_live_preview"),
            path("audience/", view(self.audience_view), name="campaigns_campaign_audience"),
            path("customers/", view(self.customer_picker_view), name="campaigns_campaign_customers"),
            path("<int:pk>/progress/", view(self.progress_view), name="campaigns_campaign_progress"),
            path("<int:pk>/test/", view(self.test_view), name="campaigns_campaign_test"),
            path("<int:pk>/action/<str:action>/", view(self.action_view), name="campaigns_campaign_action"),
        ] + super().get_urls()

    def live_preview_view(self, request):
        """POST the form's current content (and a customer) -> rendered subject/html/text as JSON.

        `variant` (A..D) with the form's variant fields: that A/B variant as its recipients get it
        (its subject, content and from name over the campaign's)."""
        if not self.has_view_permission(request) or request.method != "POST":
            raise PermissionDenied
        key = request.POST.get("variant") or ""
        if key and key not in abtests.VARIANT_KEYS:
            return JsonResponse(
                {
                    "errors": {"variant": [f"One of {', '.join(abtests.VARIANT_KEYS)}."]},
                    "labels": {"variant": str(_("Variant"))},
                },
                status=400,
            )
        template = EmailTemplate.objects.filter(
            pk=request.POST.get("template") or 0, kind="marketing"
        ).first()
        probe = Campaign(
            name=request.POST.get("name", ""),
            template=template,
            subject=request.POST.get("subject", ""),
            html_body=request.POST.get("html_body", ""),
            text_body=request.POST.get("text_body", ""),
            from_email=request.POST.get("from_email", ""),
            from_name=request.POST.get("from_name", ""),
            variants=[variant_from_form(request.POST, key)] if key else [],
        )
        content = selectors.campaign_content(campaign=probe)
        sender = selectors.campaign_sender(campaign=probe)
        if key:
            # The sender's own choice of a variant's parts (abtests.variant_content), so the preview
            # shows what that variant's recipients get.
            content, sender = abtests.variant_content(campaign=probe, key=key, content=content, sender=sender)
        customer = _find_customer(request.POST.get("customer"))
        try:
            rendered = email_templates.template_preview(
                subject=content["subject"],
                html_body=content["html"],
                text_body=content["text"],
                customer=customer,
                campaign_name=probe.name,
            )
        except ValidationError as error:
            return JsonResponse(
                {
                    "errors": error.message_dict,
                    "labels": {key: field_label(Campaign, key) for key in error.message_dict},
                },
                status=200,
            )
        return JsonResponse(
            {
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "from_name": sender["from_name"],
                "variant": key,
                "customer": customer.email if customer else None,
                "errors": {},
            }
        )

    def customer_picker_view(self, request):
        """?q= -> {"results": [{id, email, name}]}: the preview's "as customer" picker."""
        if not self.has_view_permission(request) or not request.user.has_perm("customers.view_customer"):
            raise PermissionDenied
        return JsonResponse({"results": customer_picker_results(request.GET.get("q", "")[:200])})

    def audience_view(self, request):
        """?segment=&exclude_segment= -> {"count": N}: who would receive it now."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            segment = Segment.objects.filter(pk=int(request.GET.get("segment") or 0)).first()
            exclude = Segment.objects.filter(pk=int(request.GET.get("exclude_segment") or 0)).first()
        except ValueError:
            return JsonResponse({"count": None, "error": "Not a segment id."}, status=400)
        probe = Campaign(segment=segment, exclude_segment=exclude)
        try:
            count = selectors.audience_count(campaign=probe) if segment else 0
        except ValidationError as error:
            return JsonResponse({"count": None, "error": " ".join(error.messages)}, status=200)
        return JsonResponse({"count": count})

    def progress_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=pk)
        return JsonResponse({"status": campaign.status, **selectors.campaign_progress(campaign=campaign)})

    def test_view(self, request, pk):
        if not self.has_change_permission(request) or request.method != "POST":
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=pk)
        try:
            _report_test_send(
                request,
                proofs.campaign_test_send(
                    campaign=campaign,
                    emails=_split_emails(request.POST.get("emails")),
                    variant=request.POST.get("variant") or None,
                ),
            )
        except ValidationError as error:
            messages.error(request, " ".join(m for ms in error.message_dict.values() for m in ms))
        return redirect("admin:campaigns_campaign_change", pk)

    def action_view(self, request, pk, action):
        """GET: a confirmation page (with the pre-send checklist); POST: do it, then back to the campaign."""
        if action not in ACTIONS:
            raise Http404
        if not self.has_change_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=pk)
        service, label, _to, _sources = ACTIONS[action]
        back = reverse("admin:campaigns_campaign_change", args=[pk])
        schedule_value = request.POST.get("scheduled_at", "")
        if request.method == "POST":
            try:
                if action == "schedule":
                    when = parse_local_datetime(schedule_value)
                    if when is None:
                        raise ValidationError(
                            {"scheduled_at": [_("Choose a date and time, e.g. 2030-01-31 09:00.")]}
                        )
                    if when <= timezone.now():
                        raise ValidationError(
                            {
                                "scheduled_at": [
                                    _("Must be in the future (now is %(now)s %(zone)s).") % _now_words()
                                ]
                            }
                        )
                    service(campaign=campaign, scheduled_at=when)
                else:
                    service(campaign=campaign)
            except CampaignStateError as error:
                messages.error(request, str(error))
                return redirect(back)
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    for problem in problems:
                        messages.error(request, f"{field_label(Campaign, field)}: {problem}")
                if action == "schedule":
                    return redirect(request.path)
                # Back to the campaign with the first field at fault highlighted (:target).
                first = next(iter(error.message_dict), "")
                return redirect(back + (f"#id_{first}" if first in CampaignForm.Meta.fields else ""))
            messages.success(request, _action_done_message(action, label, campaign))
            return redirect(back)
        checklist = _checklist(campaign, back) if action in ("send", "schedule") else []
        blockers = [item for item in checklist if item["blocking"] and not item["ok"]]
        default_when = (
            campaign.scheduled_at
            if campaign.scheduled_at and campaign.scheduled_at > timezone.now()
            else None
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("%(action)s “%(name)s”?") % {"action": label, "name": campaign.name},
            "opts": self.model._meta,
            "original": campaign,
            "campaign": campaign,
            "action": action,
            "action_label": label,
            "checklist": checklist,
            "checklist_ok": all(item["ok"] for item in checklist),
            "blockers": blockers,
            "back_url": back,
            "scheduled_at": local_input_value(default_when or next_quarter_hour_plus_hour()),
            "scheduled_min": local_input_value(timezone.now()),
            "time_zone": _tz_name(),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/confirm.html", context)


# The checklist's items that make sending impossible (the service refuses them) and where to fix each;
# the others (a test copy, the unsubscribe link) are advice and never disable the button.
CHECKLIST_FIXES = {
    "segment": ("#id_segment", _("Choose a segment")),
    "audience": ("#id_segment", _("Choose a segment with marketable customers")),
    "content": ("#id_template", _("Choose a template or write the content")),
    "subject": ("#id_subject", _("Write a subject")),
    "sender": ("#id_from_email", _("Set a sender address")),
}


def _checklist(campaign, change_url):
    items = []
    for key, label, ok, detail in readiness.campaign_checklist(campaign=campaign):
        blocking = key in CHECKLIST_FIXES
        if key == "test" and ok:
            detail = _last_test_words(campaign) or detail
        anchor, fix_label = CHECKLIST_FIXES.get(key, ("", ""))
        items.append(
            {
                "key": key,
                "label": label,
                "ok": ok,
                "detail": detail,
                "blocking": blocking,
                "fix_url": f"{change_url}{anchor}" if blocking and not ok else "",
                "fix_label": fix_label,
            }
        )
    return items


def _last_test_words(campaign):
    """When the last test copy went out, in the tenant's time zone (the service speaks UTC)."""
    at = readiness.campaign_last_test(campaign=campaign)
    if isinstance(at, str):
        at = parse_datetime(at)
    if not isinstance(at, datetime):
        return ""
    if timezone.is_naive(at):
        at = at.replace(tzinfo=UTC)  # stored as UTC wall time
    return _("last at %(when)s %(zone)s") % {
        "when": timezone.localtime(at).strftime("%Y-%m-%d %H:%M"),
        "zone": _tz_name(),
    }


def _action_done_message(action, label, campaign):
    if action == "send":
        return _("Queued: sending starts in a moment; the progress below follows it.")
    if action == "schedule":
        campaign.refresh_from_db(fields=["scheduled_at"])
        when = timezone.localtime(campaign.scheduled_at).strftime("%Y-%m-%d %H:%M")
        return _("Scheduled for %(when)s %(zone)s.") % {"when": when, "zone": _tz_name()}
    if action == "cancel":
        return _("The campaign is cancelled: nobody else will receive it.")
    return _("%(action)s: done.") % {"action": label}


def _stats_url(campaign):
    try:
        return reverse("admin:tracking_campaign_stats", args=[campaign.pk])
    except Exception:  # the tracking admin is optional
        return ""


class VariantFilter(admin.SimpleListFilter):
    """The A/B variants by their fixed keys: a field filter would read every recipient's distinct value."""

    title = _("A/B variant")
    parameter_name = "variant"

    def lookups(self, request, model_admin):
        return [(key, key) for key in abtests.VARIANT_KEYS]

    def queryset(self, request, queryset):
        return queryset.filter(variant=self.value()) if self.value() else queryset


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(ReadOnlyMixin, ModelAdmin):
    """Who got which campaign and how it went; read-only (the sender and tracking write these rows)."""

    list_display = ["email", "campaign", "status", "variant", "attempts", "sent_at", "error"]
    list_filter = ["status", VariantFilter, "campaign"]
    search_fields = ["email"]
    list_select_related = ["campaign"]
    show_full_result_count = False
    paginator = EstimatingPaginator  # a campaign to a million has a million rows: estimate, as the API does
    readonly_fields = [f.name for f in CampaignRecipient._meta.fields]


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["email", "reason", "detail"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True  # empty only for an erased address's kept hash

    def clean_email(self):
        return (self.cleaned_data.get("email") or "").strip().lower()


@admin.register(Suppression)
class SuppressionAdmin(ModelAdmin):
    form = SuppressionForm
    list_display = ["__str__", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email"]
    fields = ["email", "reason", "detail"]

    def get_readonly_fields(self, request, obj=None):
        # An erased address's suppression is its keyed hash (campaigns.privacy): nothing to edit.
        return self.fields if obj is not None and obj.email is None else []


# --- sender domains ----------------------------------------------------------------------------------

SENDER_STATUS_COLOURS = {"pending": "#d97706", "verified": "#16a34a", "failed": "#dc2626"}


class SenderDomainAddForm(forms.ModelForm):
    class Meta:
        model = SenderDomain
        fields = ["domain"]
        help_texts = {"domain": _("The part after @ of the addresses to send from, e.g. example.com.")}

    def clean_domain(self):
        try:
            host = senders.domain_normalize(self.cleaned_data.get("domain"))
        except ValidationError as error:
            raise ValidationError(error.message_dict["domain"])
        if SenderDomain.objects.filter(domain=host).exists():
            raise ValidationError(
                _("%(domain)s is already a sender domain of this account.") % {"domain": host}
            )
        return host


@admin.register(SenderDomain)
class SenderDomainAdmin(ModelAdmin):
    """Add a domain, publish the records it shows, verify it. Nothing to edit: a domain is added,
    verified (again) or deleted; the private key is never shown."""

    form = SenderDomainAddForm
    list_display = ["domain", "status_badge", "verified_at", "last_checked_at"]
    list_filter = ["status"]
    search_fields = ["domain"]
    fields = ["domain", "status", "verified_at", "last_checked_at", "dkim_selector", "created_at"]
    # Above the details: what to publish and what the last check found come first.
    change_form_outer_before_template = "admin/campaigns/senderdomain/records.html"

    def get_fields(self, request, obj=None):
        return ["domain"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.fields

    def has_change_permission(self, request, obj=None):
        return False  # the page is a view; "Verify now" needs the change permission (verify_view)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a bulk delete would skip the in-use check
        return actions

    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj, css_class="sender-domain-status", colours=SENDER_STATUS_COLOURS)

    def save_model(self, request, obj, form, change):
        saved = senders.sender_domain_create(domain=form.cleaned_data["domain"])
        obj.pk = saved.pk

    def response_add(self, request, obj, post_url_continue=None):
        messages.success(
            request,
            _("%(domain)s added: publish the two records below at your DNS provider, then verify.")
            % {"domain": obj.display_domain},
        )
        return redirect("admin:campaigns_senderdomain_change", obj.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sender_domain = SenderDomain.objects.filter(pk=object_id).first()
        if sender_domain is not None:
            extra_context = {
                **(extra_context or {}),
                "sender_domain": sender_domain,
                "sender_records": senders.sender_domain_records(sender_domain=sender_domain),
                "sender_verify_url": reverse("admin:campaigns_senderdomain_verify", args=[sender_domain.pk]),
                "sender_can_verify": request.user.has_perm("campaigns.change_senderdomain"),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<int:pk>/verify/",
                self.admin_site.admin_view(self.verify_view),
                name="campaigns_senderdomain_verify",
            ),
        ] + super().get_urls()

    def verify_view(self, request, pk):
        """POST: look the records up now, then back to the domain's page with what was found."""
        if request.method != "POST" or not request.user.has_perm("campaigns.change_senderdomain"):
            raise PermissionDenied
        sender_domain = senders.sender_domain_verify(sender_domain=get_object_or_404(SenderDomain, pk=pk))
        records = senders.sender_domain_records(sender_domain=sender_domain)
        problems = [
            f"{record['name']}: {record['detail']}" for record in records if record["status"] != "found"
        ]
        if sender_domain.status == "verified" and not problems:
            messages.success(
                request,
                _("%(domain)s is verified: its addresses can send.")
                % {"domain": sender_domain.display_domain},
            )
        else:
            messages.error(
                request,
                _("%(domain)s is %(status)s. %(problems)s")
                % {
                    "domain": sender_domain.display_domain,
                    "status": sender_domain.get_status_display().lower(),
                    "problems": " ".join(problems),
                },
            )
        return redirect("admin:campaigns_senderdomain_change", pk)

    def delete_view(self, request, object_id, extra_context=None):
        sender_domain = SenderDomain.objects.filter(pk=object_id).first()
        if sender_domain is not None and self.has_delete_permission(request, sender_domain):
            problem = senders.sender_domain_in_use(sender_domain=sender_domain)
            if problem:
                messages.error(request, problem)
                return redirect("admin:campaigns_senderdomain_change", sender_domain.pk)
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        senders.sender_domain_delete(sender_domain=obj)


def _emails_sent_to(customer):
    """The customer page's timeline: the campaigns sent to this customer (latest 50)."""
    rows = (
        CampaignRecipient.objects.filter(customer=customer, sent_at__isnull=False)
        .select_related("campaign")
        .order_by("-sent_at")[:50]
    )
    return [
        {
            "at": row.sent_at,
            "kind": "email_sent",
            "label": _("Email sent"),
            "body": row.campaign.name
            + (f" ({row.get_status_display().lower()})" if row.status != "sent" else ""),
            "author": "",
            "url": reverse("admin:campaigns_campaign_change", args=[row.campaign_id]),
        }
        for row in rows
    ]


PROFILE_TIMELINE_PROVIDERS.append(_emails_sent_to)
