from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from segments import hooks as segment_hooks
        from segments.rules import register_set_field
        from tenancy import tenant_settings

        from . import privacy, selectors, senders, transactional

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
        for field in ("opened_campaign", "clicked_campaign"):
            segment_hooks.value_suggesters[field] = selectors.campaign_suggestions
