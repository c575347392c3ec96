"""The customer list's query-string filters, search and ordering: one set, used by GET /api/customers and
by a segment's customer list (GET /api/segments/{id}/customers). Invalid values are a 400 naming them."""

import django_filters
from django import forms
from rest_framework import filters
from rest_framework.exceptions import ValidationError

from core.values import parse_bool

from . import selectors
from .countries import country_normalize
from .models import Customer


class CountryFormField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        try:
            return country_normalize(value)
        except ValueError as error:
            raise forms.ValidationError(str(error))


class CountryFilter(django_filters.CharFilter):
    field_class = CountryFormField


class StrictBooleanFormField(forms.Field):
    def clean(self, value):
        try:
            return parse_bool(value)
        except ValueError as error:
            raise forms.ValidationError(str(error))


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanFormField


class CustomerFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(
        method="filter_tag", help_text="Tag name(s), comma-separated: customers having all of them."
    )
    city = django_filters.CharFilter(method="filter_city", help_text="City, ignoring case.")
    country = CountryFilter(method="filter_country", help_text="ISO 3166-1 alpha-2 code, any case.")
    email_marketing = StrictBooleanFilter(field_name="email_marketing")
    total_spent_min = django_filters.NumberFilter(field_name="total_spent", lookup_expr="gte")
    total_spent_max = django_filters.NumberFilter(field_name="total_spent", lookup_expr="lte")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601; created at or after."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601; created before."
    )

    class Meta:
        model = Customer
        fields = []

    def filter_tag(self, queryset, name, value):
        return selectors.customers_with_tags(queryset, names=value.split(","))

    def filter_city(self, queryset, name, value):
        return selectors.customers_in_city(queryset, city=value)

    def filter_country(self, queryset, name, value):
        return selectors.customers_in_country(queryset, country=value)


CUSTOMER_ORDERING_FIELDS = [
    "id",
    "email",
    "first_name",
    "last_name",
    "city",
    "country",
    "total_spent",
    "order_count",
    "first_order_at",
    "last_order_at",
    "created_at",
    "updated_at",
]


class CustomerSearchFilter(filters.SearchFilter):
    """`?search=`: every word must occur in the email, "first last" name or phone (trigram index)."""

    search_description = "Words that must all occur in the email, the name (first last) or the phone."

    def get_search_fields(self, view, request):
        return ["email"]  # for the schema only; filtering is selectors.customers_search

    def filter_queryset(self, request, queryset, view):
        term = request.query_params.get(self.search_param, "")
        if "\x00" in term:
            raise ValidationError({"search": ["NUL characters are not allowed."]})
        return selectors.customers_search(queryset, term=term)


class StrictOrderingFilter(filters.OrderingFilter):
    """`?ordering=`: an unknown field is a 400; the id breaks ties so pages never overlap."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if not params:
            return self.get_default_ordering(view)
        fields = [param.strip() for param in params.split(",") if param.strip()]
        allowed = set(view.ordering_fields)
        unknown = [field for field in fields if field.lstrip("-") not in allowed]
        if unknown:
            raise ValidationError(
                {
                    "ordering": [
                        f"Unknown ordering field(s): {', '.join(unknown)}. Allowed: {', '.join(view.ordering_fields)}."
                    ]
                }
            )
        if not any(field.lstrip("-") == "id" for field in fields):
            fields.append("-id" if fields[-1].startswith("-") else "id")
        return fields
