from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self):
        from . import outbox, services  # noqa: PLC0415  (imports models: only once apps are ready)
        from .serializers import CustomerSerializer  # noqa: PLC0415  (imports models: only once apps are ready)

        outbox.register()
        # The API's shape of a customer is also the `data` of customer.* events (see services).
        services.customer_representation_register(
            render=lambda customer: dict(CustomerSerializer(customer).data)
        )
