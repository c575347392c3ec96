from django.apps import AppConfig

from customers import hooks


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self):
        from campaigns.models import CARRIER_RELATIONS  # noqa: PLC0415  (imports models: only once apps are ready)
        from segments import services as segment_services  # noqa: PLC0415  (imports models: only once apps are ready)

        from . import outbox, services, triggers, work  # noqa: PLC0415  (imports models: only once apps are ready)

        work.register()
        outbox.register()

        # A step's carrier campaign is not one of the marketer's campaigns.
        if "flow_carrier" not in CARRIER_RELATIONS:
            CARRIER_RELATIONS.append("flow_carrier")
        # Orders reach flows through customers' hooks (after commit): order triggers, wait_for.
        if triggers.order_recorded not in hooks.order_recorded:
            hooks.order_recorded.append(triggers.order_recorded)
        if triggers.order_status_changed not in hooks.order_status_changed:
            hooks.order_status_changed.append(triggers.order_status_changed)
        # Customers written through customers' services: noted for the segment triggers' next tick.
        if triggers.customers_changed not in hooks.customers_changed:
            hooks.customers_changed.append(triggers.customers_changed)
        if services.customer_erased not in hooks.customer_erased:
            hooks.customer_erased.append(services.customer_erased)
        # A live flow's trigger segment can't be deleted from under it.
        if triggers.segment_delete_guard not in segment_services.DELETE_GUARDS:
            segment_services.DELETE_GUARDS.append(triggers.segment_delete_guard)
