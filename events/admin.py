"""Operators see the event pipeline on the public host (outbox, applied webshop messages); a tenant's
staff see their own order emails (what went out, what was skipped and why)."""

from django.contrib import admin, messages
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from core.admin import ReadOnlyMixin  # rows written by the pipeline are evidence
from tenancy.admin import PublicOnlyMixin, on_public_host

from .models import InboxMessage, OutboxEvent, TransactionalEmail
from .services import outbox_retry_now
from .tasks import publish_outbox


class OutboxStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("waiting", _("Waiting")), ("backing_off", _("Backing off")), ("published", _("Published"))]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "waiting":
            return queryset.filter(published_at__isnull=True)
        if value == "backing_off":
            return queryset.filter(published_at__isnull=True, next_attempt_at__gt=timezone.now())
        if value == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyMixin, PublicOnlyMixin, ModelAdmin):
    list_display = ["id", "type", "tenant", "occurred_at", "state", "attempts", "short_error"]
    list_filter = [OutboxStateFilter, "type"]
    search_fields = ["=event_id", "=tenant", "type"]
    ordering = ["-id"]
    actions = ["retry_now"]
    show_full_result_count = False  # COUNT(*) over a large outbox is slow and says little

    def has_view_permission(self, request, obj=None):
        return on_public_host(request) and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("State"))
    def state(self, obj):
        if obj.published_at:
            return _("published %(at)s") % {"at": obj.published_at.strftime("%Y-%m-%d %H:%M:%S")}
        if obj.next_attempt_at and obj.next_attempt_at > timezone.now():
            return _("backing off until %(at)s") % {"at": obj.next_attempt_at.strftime("%H:%M:%S")}
        return _("waiting")

    @admin.display(description=_("Last error"))
    def short_error(self, obj):
        return (obj.last_error or "")[:120]

    @admin.action(description=_("Retry now (the broker is back): clear the backoff of every waiting event"))
    def retry_now(self, request, queryset):
        cleared = outbox_retry_now()

        try:
            publish_outbox.apply_async(headers={"_schema_name": "public"}, retry=False)
        except Exception:
            messages.warning(request, _("The task broker is unreachable; beat will publish."))
        messages.success(request, _("Backoff cleared on %(n)d event(s).") % {"n": cleared})


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyMixin, PublicOnlyMixin, ModelAdmin):
    list_display = ["message_id", "type", "tenant", "processed_at"]
    list_filter = ["type"]
    search_fields = ["=message_id", "=tenant"]
    ordering = ["-id"]
    show_full_result_count = False

    def has_view_permission(self, request, obj=None):
        return on_public_host(request) and request.user.is_superuser


@admin.register(TransactionalEmail)
class TransactionalEmailAdmin(ReadOnlyMixin, ModelAdmin):
    list_display = ["order_id", "kind", "status", "attempts", "created_at", "sent_at", "reason"]
    list_filter = ["kind", "status"]
    search_fields = ["=order_id"]
    ordering = ["-id"]

    def get_queryset(self, request):
        # The ledger lives in the public schema: a tenant's staff see only their own rows.
        queryset = super().get_queryset(request)
        if on_public_host(request):
            return queryset
        return queryset.filter(tenant=connection.schema_name)

    def get_list_display(self, request):
        if on_public_host(request):
            return ["tenant", *self.list_display]
        return self.list_display

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        if on_public_host(request):
            return request.user.is_superuser
        # Whoever may see the orders may see the emails about them.
        return (
            request.user.is_active and request.user.is_staff and request.user.has_perm("customers.view_order")
        )
