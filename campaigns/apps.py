from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from customers import hooks
        from tenancy import tenant_settings

        from . import senders, services, transactional

        transactional.register()
        if senders.sender_problem not in tenant_settings.FROM_EMAIL_CHECKS:
            tenant_settings.FROM_EMAIL_CHECKS.append(senders.sender_problem)
        if services.recipients_erase not in hooks.customer_erased:
            hooks.customer_erased.append(services.recipients_erase)
