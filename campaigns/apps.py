from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from customers import hooks

        from . import services, transactional

        transactional.register()
        if services.recipients_erase not in hooks.customer_erased:
            hooks.customer_erased.append(services.recipients_erase)
