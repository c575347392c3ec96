from django.apps import AppConfig

from segments import hooks as segment_hooks


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        # Here, not at the top: these import models, which Django loads only after every app config.
        from segments import services as segment_services  # noqa: PLC0415  (imports models: only once apps are ready)
        from segments.rules import register_set_field  # noqa: PLC0415  (imports models: only once apps are ready)
        from tenancy import tenant_settings  # noqa: PLC0415  (imports models: only once apps are ready)
        from tenancy.work import work_kind_register  # noqa: PLC0415  (imports models: only once apps are ready)

        from . import abtests, lifecycle, privacy, readiness, selectors, senders, transactional  # noqa: PLC0415  (imports models: only once apps are ready)

        transactional.register()
        if senders.sender_problem not in tenant_settings.FROM_EMAIL_CHECKS:
            tenant_settings.FROM_EMAIL_CHECKS.append(senders.sender_problem)
        # The segment fields over recipients' opens and clicks: segments sits below campaigns and
        # knows them only through its registry.
        register_set_field(
            "opened_campaign",
            selectors.recipients_exist("first_opened_at"),
            member_type="id",
            label="Opened campaign",
        )
        register_set_field(
            "clicked_campaign",
            selectors.recipients_exist("first_clicked_at"),
            member_type="id",
            label="Clicked campaign",
        )
        privacy.register()
        # A scheduled campaign's segment can't be deleted from under it.
        if readiness.segment_delete_guard not in segment_services.DELETE_GUARDS:
            segment_services.DELETE_GUARDS.append(readiness.segment_delete_guard)
        for field in ("opened_campaign", "clicked_campaign"):
            segment_hooks.value_suggesters[field] = selectors.campaign_suggestions
        # Periodic work that beat hands only to the tenants that have some (tenancy/work.py).
        work_kind_register(lifecycle.DISPATCH_WORK, probe=selectors.campaigns_next_start)
        work_kind_register(lifecycle.STALL_WORK, probe=selectors.campaigns_stall_check_due)
        work_kind_register(lifecycle.LEASES_WORK, probe=selectors.leases_reclaim_due)
        work_kind_register(lifecycle.AB_WORK, probe=abtests.ab_tests_next_due)
