"""The marketers' admin for flows: a builder (a vertical canvas of steps), recipes, activate / pause
behind a confirmation page, live counts per step and a run inspector ("why did Anna not get step
3?" answered by the step log). Thin: every change goes through flows.services, like the API.
Stable DOM ids for browser tests are listed in templates/admin/flows/flow/builder.html."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from campaigns.models import EmailTemplate
from customers.models import Customer, Order
from segments.models import Segment
from segments.rules import field_catalogue

from . import recipes, selectors, services
from .definitions import STEP_TYPES, TRIGGER_TYPES
from .models import Flow, FlowRun, FlowStepLog
from .services import FlowStateError

STATUS_COLOURS = {"draft": "#6b7280", "active": "#16a34a", "paused": "#9333ea", "archived": "#6b7280"}
ACTIONS = {
    "activate": (services.flow_activate, _("activate")),
    "pause": (services.flow_pause, _("pause")),
    "archive": (services.flow_archive, _("archive")),
}


@admin.register(Flow)
class FlowAdmin(ModelAdmin):
    list_display = ["name", "status_badge", "trigger_label", "version", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    fields = ["name"]
    change_list_template = "admin/flows/flow/change_list.html"

    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, flow):
        return format_html(
            '<span style="color:{}" data-status="{}">● {}</span>',
            STATUS_COLOURS.get(flow.status, "#6b7280"),
            flow.status,
            flow.get_status_display(),
        )

    @admin.display(description=_("Trigger"))
    def trigger_label(self, flow):
        trigger = flow.trigger or {}
        return trigger.get("name") or trigger.get("type", "—")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("recipes/", view(self.recipes_view), name="flows_flow_recipes"),
            path("<int:pk>/builder/", view(self.builder_view), name="flows_flow_builder"),
            path("<int:pk>/save/", view(self.save_view), name="flows_flow_save"),
            path("<int:pk>/inspect/", view(self.inspect_view), name="flows_flow_inspect"),
            path("<int:pk>/action/<str:action>/", view(self.action_view), name="flows_flow_action"),
        ] + super().get_urls()

    def save_model(self, request, obj, form, change):
        """A new flow from the name alone is a draft made by the service; edits go through the builder."""
        if change:
            raise PermissionDenied
        created = services.flow_create(name=obj.name)
        obj.pk = created.pk

    def has_delete_permission(self, request, obj=None):
        # Only a draft may be deleted (PRODUCT.md); others are archived, which ends their runs.
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == "draft")

    def response_add(self, request, obj, post_url_continue=None):
        return redirect(reverse("admin:flows_flow_builder", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404
        return redirect(reverse("admin:flows_flow_builder", args=[int(object_id)]))

    def recipes_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            key = request.POST.get("recipe", "")
            if key not in recipes.BY_KEY:
                messages.error(request, _("Pick one of the recipes."))
                return redirect(request.path)
            flow = recipes.flow_from_recipe(key=key)
            messages.success(
                request, _("A draft flow “%(name)s” was made from the recipe.") % {"name": flow.name}
            )
            return redirect(reverse("admin:flows_flow_builder", args=[flow.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("New flow from a recipe"),
            "opts": self.model._meta,
            "recipes": recipes.RECIPES,
        }
        return TemplateResponse(request, "admin/flows/flow/recipes.html", context)

    def builder_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        flow = get_object_or_404(Flow, pk=pk)
        catalogue = {
            "step_types": STEP_TYPES,
            "trigger_types": TRIGGER_TYPES,
            "templates": list(
                EmailTemplate.objects.filter(kind="marketing").values("id", "name").order_by("name")
            ),
            "segments": list(Segment.objects.values("id", "name").order_by("name")),
            "order_statuses": [s for s, _ in Order.STATUS_CHOICES],
            # The segment language's fields and operators: branch and exit conditions use it.
            "rule_fields": field_catalogue(),
        }
        definition = {
            "name": flow.name,
            "trigger": flow.trigger,
            "steps": flow.steps,
            "exit_rules": flow.exit_rules,
            "reentry": flow.reentry,
            "frequency_cap_hours": flow.frequency_cap_hours,
            "send_window": flow.send_window,
            "from_email": flow.from_email,
            "from_name": flow.from_name,
        }
        context = {
            **self.admin_site.each_context(request),
            "title": flow.name,
            "opts": self.model._meta,
            "original": flow,
            "flow": flow,
            "can_change": self.has_change_permission(request, flow),
            "definition_json": definition,
            "catalogue_json": catalogue,
            "stats_url": reverse("flow-stats", args=[flow.pk]) if _has_api() else "",
            "save_url": reverse("admin:flows_flow_save", args=[flow.pk]),
            "inspect_url": reverse("admin:flows_flow_inspect", args=[flow.pk]),
        }
        return TemplateResponse(request, "admin/flows/flow/builder.html", context)

    def save_view(self, request, pk):
        """The builder's save: JSON in, the flow (or the errors by field) out."""
        if request.method != "POST":
            raise Http404
        flow = get_object_or_404(Flow, pk=pk)
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        try:
            data = json.loads(request.body or b"{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return JsonResponse({"errors": {"non_field_errors": ["Not a JSON object."]}}, status=400)
        allowed = {key: value for key, value in data.items() if key in services.EDITABLE}
        try:
            flow = services.flow_update(flow=flow, **allowed)
        except ValidationError as error:
            return JsonResponse({"errors": error.message_dict}, status=400)
        except FlowStateError as error:
            return JsonResponse({"errors": {"status": [str(error)]}}, status=409)
        return JsonResponse({"ok": True, "version": flow.version, "status": flow.status})

    def inspect_view(self, request, pk):
        """The run inspector: a customer's runs of this flow with their step logs (JSON)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        flow = get_object_or_404(Flow, pk=pk)
        query = (request.GET.get("q") or "").strip().lower()
        customer = None
        if query.isdigit():
            customer = Customer.objects.filter(pk=int(query)).first()
        elif query:
            customer = Customer.objects.filter(email=query).first()
        if customer is None:
            return JsonResponse({"customer": None, "runs": []})
        runs = []
        for run in selectors.flow_runs(flow=flow, customer=customer.pk)[:20]:
            runs.append(
                {
                    "id": run.id,
                    "status": run.status,
                    "step_id": run.step_id,
                    "due_at": run.due_at.isoformat() if run.due_at else None,
                    "exit_reason": run.exit_reason,
                    "entered_at": run.entered_at.isoformat(),
                    "steps": [
                        {
                            "step_id": log.step_id,
                            "type": log.step_type,
                            "status": log.status,
                            "detail": log.detail,
                            "message": log.recipient.status if log.recipient_id else None,
                            "why": log.recipient.error if log.recipient_id else "",
                            "at": log.at.isoformat(),
                        }
                        for log in run.steps.all()
                    ],
                }
            )
        return JsonResponse({"customer": {"id": customer.pk, "email": customer.email}, "runs": runs})

    def action_view(self, request, pk, action):
        if action not in ACTIONS:
            raise Http404
        flow = get_object_or_404(Flow, pk=pk)
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        service, label = ACTIONS[action]
        back = reverse("admin:flows_flow_builder", args=[pk])
        if request.method == "POST":
            try:
                service(flow=flow)
            except FlowStateError as error:
                messages.error(request, str(error))
                return redirect(back)
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    for problem in problems:
                        messages.error(request, f"{field}: {problem}")
                return redirect(back)
            messages.success(
                request, _("Done: the flow is %(status)s.") % {"status": flow.get_status_display().lower()}
            )
            return redirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": _("%(action)s “%(name)s”?") % {"action": str(label).capitalize(), "name": flow.name},
            "opts": self.model._meta,
            "original": flow,
            "flow": flow,
            "action": action,
            "action_label": label,
            "back_url": back,
        }
        return TemplateResponse(request, "admin/flows/flow/confirm.html", context)


def _has_api():
    try:
        reverse("flow-stats", args=[1])
    except Exception:
        return False
    return True


class StepLogInline(TabularInline):
    model = FlowStepLog
    fields = ["step_id", "step_type", "version", "status", "detail", "recipient", "at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FlowRun)
class FlowRunAdmin(ModelAdmin):
    list_display = ["id", "flow", "customer", "status", "step_id", "due_at", "exit_reason", "entered_at"]
    list_filter = ["status", "flow"]
    search_fields = ["customer__email"]
    raw_id_fields = ["customer"]
    readonly_fields = [f.name for f in FlowRun._meta.fields]
    inlines = [StepLogInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
