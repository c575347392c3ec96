"""Filters of a segment's customer list: the ones the customer list offers (PRODUCT.md)."""

import django_filters
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Lower

from customers.models import Customer, CustomerTag


class SegmentCustomerFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(method="filter_tag", help_text="has this tag (any case)")
    city = django_filters.CharFilter(method="filter_lower", help_text="city, any case")
    country = django_filters.CharFilter(method="filter_lower", help_text="ISO 3166 alpha-2, any case")
    email_marketing = django_filters.BooleanFilter()
    total_spent_min = django_filters.NumberFilter(field_name="total_spent", lookup_expr="gte")
    total_spent_max = django_filters.NumberFilter(field_name="total_spent", lookup_expr="lte")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = Customer
        fields = []

    def filter_lower(self, queryset, name, value):
        # lower(column) = lower(value) matches the lower(city)/lower(country) indexes.
        return queryset.alias(**{f"_{name}_lower": Lower(name)}).filter(
            **{f"_{name}_lower": Lower(Value(value.strip()))}
        )

    def filter_tag(self, queryset, name, value):
        tagged = CustomerTag.objects.filter(customer=OuterRef("pk")).alias(_name=Lower("tag__name"))
        return queryset.filter(Exists(tagged.filter(_name=Lower(Value(value.strip())))))
