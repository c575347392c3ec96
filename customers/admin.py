"""The marketers' admin for customers, orders, tags and CSV imports (django-unfold).

Thin: forms validate with the API's own rules, every write calls customers.services, and nothing a
customer typed is ever marked safe (Django's escaping does its job).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import RangeNumericFilter, TextFilter

from core.money import amount_parse, money_format, tenant_currency

from . import hooks, selectors, services
from .countries import country_normalize
from .models import Address, Customer, ImportJob, Interaction, Order, OrderItem, Tag
from .pagination import EstimatingPaginator
from .serializers import email_normalize

RESUBSCRIBE_REASON_MAX = 1000

# --- filters ----------------------------------------------------------------------------------------


class TagFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(str(tag.pk), tag.name) for tag in Tag.objects.all()[:200]]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            tag = Tag.objects.filter(pk=int(self.value())).first()
            return selectors.customers_with_tags(queryset, names=[tag.name]) if tag else queryset.none()
        return queryset


class CityFilter(TextFilter):
    title = _("city")
    parameter_name = "city"

    def queryset(self, request, queryset):
        if self.value():
            return selectors.customers_in_city(queryset, city=self.value())
        return queryset


class CountryFilter(TextFilter):
    title = _("country (ISO code)")
    parameter_name = "country"

    def queryset(self, request, queryset):
        if self.value():
            try:
                code = country_normalize(self.value())
            except ValueError:
                return queryset.none()
            return selectors.customers_in_country(queryset, country=code)
        return queryset


class ConsentFilter(admin.SimpleListFilter):
    title = _("marketing consent")
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return [("yes", _("Marketable")), ("no", _("No consent")), ("unsubscribed", _("Unsubscribed"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.marketable()
        if self.value() == "no":
            return queryset.filter(email_marketing=False)
        if self.value() == "unsubscribed":
            return queryset.filter(unsubscribed_at__isnull=False)
        return queryset


# Higher apps add to the customer page's timeline (campaigns: the emails sent): callables
# (customer) -> [{"at", "kind", "label", "body", "author", "url"}], merged by time.
PROFILE_TIMELINE_PROVIDERS = []


def profile_with_providers(customer):
    profile = selectors.customer_profile(customer=customer)
    events = list(profile["timeline"])
    for provider in PROFILE_TIMELINE_PROVIDERS:
        events.extend(provider(customer))
    events.sort(key=lambda item: item["at"], reverse=True)
    profile["timeline"] = events[: selectors.PROFILE_TIMELINE]
    return profile


# The customer list's filters as chips: (query parameter, label). "total_spent" is a range of two.
FILTER_CHIPS = [
    ("q", _("Search")),
    ("tag", _("Tag")),
    ("city", _("City")),
    ("country", _("Country")),
    ("consent", _("Consent")),
    ("total_spent_from", _("Lifetime value from")),
    ("total_spent_to", _("Lifetime value to")),
]
AMOUNT_PARAMETERS = ("total_spent_from", "total_spent_to")
CONSENT_WORDS = {"yes": _("Marketable"), "no": _("No consent"), "unsubscribed": _("Unsubscribed")}


def filter_chips(request):
    """The active filters of the list, each with the URL that removes it."""
    chips = []
    for parameter, label in FILTER_CHIPS:
        value = request.GET.get(parameter, "").strip()
        if not value:
            continue
        shown = value
        if parameter == "tag" and value.isdigit():
            shown = Tag.objects.filter(pk=int(value)).values_list("name", flat=True).first() or value
        elif parameter == "consent":
            shown = CONSENT_WORDS.get(value, value)
        elif parameter in AMOUNT_PARAMETERS:
            shown = money_format(amount_parse(value), tenant_currency())
        rest = {key: request.GET.getlist(key) for key in request.GET if key not in (parameter, "p")}
        chips.append(
            {
                "parameter": parameter,
                "label": label,
                "value": shown,
                "remove_url": "?" + urlencode(rest, doseq=True) if rest else "?",
            }
        )
    return chips


# --- customer form ----------------------------------------------------------------------------------


class CustomerAdminForm(forms.ModelForm):
    tags_text = forms.CharField(
        label=_("Tags"), required=False, help_text=_("Comma-separated tag names; this replaces the set.")
    )
    new_note = forms.CharField(
        label=_("Add a note"), required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000
    )

    class Meta:
        model = Customer
        fields = [
            "email",
            "external_id",
            "first_name",
            "last_name",
            "phone",
            "city",
            "country",
            "email_marketing",
            "email_transactional",
            "attributes",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

        if self.instance.pk:
            self.fields["tags_text"].initial = ", ".join(sorted(t.name for t in self.instance.tags.all()))

    def clean_email(self):
        try:
            email = email_normalize(self.cleaned_data.get("email"))
        except Exception as error:
            raise ValidationError(getattr(error, "detail", [str(error)])[0])
        if Customer.objects.filter(email=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A customer with this email already exists."))
        return email

    def clean_external_id(self):
        value = (self.cleaned_data.get("external_id") or "").strip() or None
        if value and Customer.objects.filter(external_id=value).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A customer with this external_id already exists."))
        return value

    def clean_country(self):
        try:
            return country_normalize(self.cleaned_data.get("country"))
        except ValueError as error:
            raise ValidationError(str(error))

    def clean_attributes(self):
        value = self.cleaned_data.get("attributes")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError(_("Attributes are a JSON object."))
        return value

    def clean(self):
        """An admin edit never lifts an unsubscribe: that is the resubscribe action, with a reason."""
        data = super().clean()
        unsubscribed_at = self.instance.unsubscribed_at if self.instance.pk else None
        if unsubscribed_at is None:
            return data
        message = _(
            "This customer unsubscribed on %(date)s. Only they can resubscribe (through their preference "
            "centre), or an admin with the action “Resubscribe the selected customers (with a reason)”."
        ) % {"date": unsubscribed_at.strftime("%Y-%m-%d %H:%M")}
        if data.get("email_marketing") and not self.instance.email_marketing:
            self.add_error("email_marketing" if "email_marketing" in self.fields else None, message)
        return data

    def clean_tags_text(self):
        names = [name.strip() for name in self.cleaned_data.get("tags_text", "").split(",") if name.strip()]
        too_long = [name for name in names if len(name) > 100]
        if too_long:
            raise ValidationError(_("A tag name has at most 100 characters."))
        return names


class AddressForm(forms.ModelForm):
    class Meta:
        model = Address
        fields = ["kind", "line1", "line2", "city", "postal_code", "country", "is_default"]

    def clean_country(self):
        try:
            return country_normalize(self.cleaned_data.get("country"))
        except ValueError as error:
            raise ValidationError(str(error))


class AddressInline(TabularInline):
    model = Address
    form = AddressForm
    extra = 0
    fields = ["kind", "line1", "line2", "city", "postal_code", "country", "is_default"]


@admin.register(Customer)
class CustomerAdmin(ModelAdmin):
    form = CustomerAdminForm
    list_display = [
        "email_or_erased",
        "full_name",
        "city",
        "country",
        "email_marketing",
        "lifetime_value",
        "order_count",
        "last_order_at",
        "created_at",
    ]
    list_before_template = "admin/customers/customer/filter_chips.html"
    change_form_outer_before_template = "admin/customers/customer/profile.html"
    list_filter = [
        TagFilter,
        CityFilter,
        CountryFilter,
        ConsentFilter,
        ("total_spent", RangeNumericFilter),
    ]
    list_filter_submit = True
    search_fields = ["email"]  # the search itself is selectors.customers_search (trigram index)
    search_help_text = _("Words of the email, name or phone.")
    ordering = ["-id"]
    show_full_result_count = False
    list_per_page = 50
    paginator = EstimatingPaginator  # no count(*) over a million rows on every page
    readonly_fields = [
        "total_spent",
        "lifetime_value",
        "order_count",
        "first_order_at",
        "last_order_at",
        "created_at",
        "updated_at",
        "erased_at",
        "activity_timeline",
        "unsubscribed_at",
    ]
    # Orders are on the profile above the form (the latest, and a link to all): not repeated in it.
    inlines = [AddressInline]
    actions = ["add_tag", "remove_tag", "resubscribe", "export_csv"]
    fieldsets = [
        (
            None,
            {"fields": ["email", "external_id", ("first_name", "last_name"), "phone", ("city", "country")]},
        ),
        (_("Consent"), {"fields": ["email_marketing", "email_transactional", "unsubscribed_at"]}),
        (_("Tags and attributes"), {"fields": ["tags_text", "attributes"]}),
        (
            _("Purchases"),
            {"fields": [("lifetime_value", "order_count"), ("first_order_at", "last_order_at")]},
        ),
        (_("Activity"), {"fields": ["new_note", "activity_timeline"]}),
        (_("Record"), {"fields": [("created_at", "updated_at"), "erased_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Consent changes through its own actions (who and why recorded), never by a checkbox.
            fields.append("email_marketing")
        return fields

    @admin.display(description=_("lifetime value"), ordering="total_spent")
    def lifetime_value(self, customer):
        return format_html(
            '<span class="crm-money" data-amount="{}">{}</span>',
            customer.total_spent,
            money_format(customer.total_spent, tenant_currency()),
        )

    @admin.display(description=_("email"), ordering="email")
    def email_or_erased(self, customer):
        return customer.email or _("(erased)")

    @admin.display(description=_("activity (latest 50)"))
    def activity_timeline(self, customer):
        if not customer.pk:
            return "-"
        # The form asks for a read-only field's contents several times: one query per page, not five.
        shown = getattr(customer, "_activity_timeline", None)
        if shown is None:
            shown = customer._activity_timeline = self._activity_timeline(customer)
        return shown

    def _activity_timeline(self, customer):
        items = Interaction.objects.filter(customer=customer).select_related("author")[:50]
        return format_html(
            "<ol class='customer-timeline'>{}</ol>",
            format_html_join(
                "",
                "<li><time>{}</time> <b>{}</b> {} <i>{}</i></li>",
                (
                    (
                        item.occurred_at.strftime("%Y-%m-%d %H:%M"),
                        item.get_kind_display(),
                        item.body,
                        item.author.get_username() if item.author_id else "",
                    )
                    for item in items
                ),
            ),
        )

    def changelist_view(self, request, extra_context=None):
        # An amount the range filter cannot read would be dropped without a word: read "20 000" and
        # "20,000" as 20000 (and say so), refuse what is no amount at all (and say so).
        fixed, refused = {}, []
        for parameter in AMOUNT_PARAMETERS:
            raw = request.GET.get(parameter, "")
            if not raw.strip():
                continue
            value = amount_parse(raw)
            if value is None:
                refused.append(raw)
            elif format(value, "f") != raw.strip():
                fixed[parameter] = format(value, "f")
        if fixed or refused:
            query = request.GET.copy()
            for parameter, value in fixed.items():
                query[parameter] = value
            for parameter in AMOUNT_PARAMETERS:
                if request.GET.get(parameter, "") in refused:
                    query.pop(parameter, None)
            if fixed:
                messages.info(
                    request,
                    _("Read the amount as %(amounts)s.")
                    % {
                        "amounts": ", ".join(
                            money_format(amount_parse(v), tenant_currency()) for v in fixed.values()
                        )
                    },
                )
            for raw in refused:
                messages.error(
                    request,
                    _(
                        "“%(value)s” is not an amount: write digits only, e.g. 20000. That filter was left out."
                    )
                    % {"value": raw},
                )
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        extra_context = {**(extra_context or {}), "filter_chips": filter_chips(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        customer = Customer.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if customer is not None:
            extra_context = {
                **(extra_context or {}),
                "title": customer.full_name or customer.email or _("(erased)"),
                "profile": profile_with_providers(customer),
                "profile_money": money_format(customer.total_spent, tenant_currency()),
                "profile_can_change": self.has_change_permission(request, customer),
                "profile_edit": request.method == "POST" or "edit" in request.GET,
                "profile_consent_url": reverse("admin:customers_customer_consent", args=[customer.pk]),
                "profile_note_url": reverse("admin:customers_customer_note", args=[customer.pk]),
                "profile_orders_url": reverse("admin:customers_order_changelist")
                + f"?customer__id__exact={customer.pk}",
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/consent/", view(self.consent_view), name="customers_customer_consent"),
            path("<int:pk>/note/", view(self.note_view), name="customers_customer_note"),
        ] + super().get_urls()

    def consent_view(self, request, pk):
        """GET ?give=1|0: say why; POST: record the change of consent (who, why, when)."""
        customer = get_object_or_404(Customer, pk=pk, erased_at__isnull=True)
        if not self.has_change_permission(request, customer):
            raise PermissionDenied
        give = (request.POST.get("give") or request.GET.get("give")) == "1"
        back = reverse("admin:customers_customer_change", args=[pk])
        error = ""
        if request.method == "POST":
            try:
                changed = services.customer_consent_record(
                    customer=customer, give=give, reason=request.POST.get("reason"), author=request.user
                )
            except ValidationError as exc:
                error = " ".join(m for ms in exc.message_dict.values() for m in ms)
            else:
                if changed:
                    messages.success(
                        request,
                        _("Marketing consent recorded.") if give else _("Unsubscribed from marketing email."),
                    )
                else:
                    messages.info(request, _("Nothing changed: the consent was already so."))
                return redirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record marketing consent") if give else _("Unsubscribe from marketing email"),
            "opts": self.model._meta,
            "original": customer,
            "customer": customer,
            "give": give,
            "error": error,
            "reason": request.POST.get("reason", ""),
            "back_url": back,
            "max_length": services.CONSENT_REASON_MAX,
        }
        return TemplateResponse(
            request, "admin/customers/customer/consent.html", context, status=400 if error else 200
        )

    def note_view(self, request, pk):
        """POST a note from the profile's timeline."""
        customer = get_object_or_404(Customer, pk=pk, erased_at__isnull=True)
        if request.method != "POST" or not self.has_change_permission(request, customer):
            raise PermissionDenied
        body = (request.POST.get("body") or "").strip()
        if not body or len(body) > 20_000:
            messages.error(request, _("Note: write something (up to 20,000 characters)."))
        else:
            services.interaction_add(customer=customer, kind="note", body=body, author=request.user)
            messages.success(request, _("Note added."))
        return redirect("admin:customers_customer_change", pk)

    def get_search_results(self, request, queryset, search_term):
        return selectors.customers_search(queryset, term=search_term or ""), False

    def has_delete_permission(self, request, obj=None):
        return False  # customers are erased (GDPR), never deleted: see the API's DELETE

    # Writes go through the services: the profile in save_model, addresses and tags in save_related,
    # so one admin save is one service call (and one event) per kind of change.
    def save_model(self, request, obj, form, change):
        data = {
            name: form.cleaned_data[name]
            for name in CustomerAdminForm.Meta.fields
            if name in form.cleaned_data
        }
        data["tags"] = form.cleaned_data["tags_text"]
        try:
            if change:
                services.customer_update(customer=obj, data=data, author=request.user)
            else:
                created = services.customer_create(data={**data, "addresses": []}, author=request.user)
                obj.pk = created.pk
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))
            raise
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            if formset.model is Address:
                addresses = [
                    {key: f.cleaned_data[key] for key in AddressInline.fields}
                    for f in formset.forms
                    if f.cleaned_data and not f.cleaned_data.get("DELETE")
                ]
                services.customer_update(customer=form.instance, data={"addresses": addresses})
        if form.cleaned_data.get("new_note", "").strip():
            services.interaction_add(
                customer=form.instance,
                kind="note",
                body=form.cleaned_data["new_note"].strip(),
                author=request.user,
            )

    def _tag_action(self, request, queryset, *, add):
        title = _("Add a tag") if add else _("Remove a tag")
        if request.POST.get("apply"):
            name = (request.POST.get("tag_name") or "").strip()
            if not name or len(name) > 100 or "," in name:
                messages.error(request, _("Give one tag name (up to 100 characters, no comma)."))
            else:
                ids = list(queryset.values_list("id", flat=True))
                if add:
                    count = services.customers_tag(customer_ids=ids, tag_names=[name])
                else:
                    count = services.customers_untag(customer_ids=ids, tag_names=[name])
                messages.success(request, _("%(count)d customers changed.") % {"count": count})
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "queryset": queryset,
            "count": queryset.count(),
            "action": request.POST.get("action"),
            "opts": self.model._meta,
            "tags": Tag.objects.all()[:200],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/customers/customer/tag_action.html", context)

    @admin.action(description=_("Add a tag to the selected customers"), permissions=["change"])
    def add_tag(self, request, queryset):
        return self._tag_action(request, queryset, add=True)

    @admin.action(description=_("Remove a tag from the selected customers"), permissions=["change"])
    def remove_tag(self, request, queryset):
        return self._tag_action(request, queryset, add=False)

    @admin.action(description=_("Resubscribe the selected customers (with a reason)"), permissions=["change"])
    def resubscribe(self, request, queryset):
        """Lift the unsubscribe of the selected customers who unsubscribed, recording who, why and when
        on each (customers.services.customer_resubscribe)."""
        unsubscribed = queryset.filter(unsubscribed_at__isnull=False, erased_at__isnull=True)
        title = _("Resubscribe")
        if request.POST.get("apply"):
            reason = (request.POST.get("reason") or "").strip()
            if not reason or len(reason) > RESUBSCRIBE_REASON_MAX:
                messages.error(
                    request,
                    _("Say why they may get marketing email again (up to %(n)d characters).")
                    % {"n": RESUBSCRIBE_REASON_MAX},
                )
            else:
                count = 0
                # Each resubscribe is its own record (who, why, when); flows' segment triggers get
                # the selected customers in one note at the end.
                with hooks.customers_changed_batch():
                    for customer in unsubscribed:
                        if services.customer_resubscribe(
                            customer=customer, source="admin", reason=reason, author=request.user
                        ):
                            count += 1
                messages.success(request, _("%(count)d customers resubscribed.") % {"count": count})
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "count": unsubscribed.count(),
            "max_length": RESUBSCRIBE_REASON_MAX,
            "action": request.POST.get("action"),
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/customers/customer/resubscribe_action.html", context)

    @admin.action(description=_("Export the selected customers to CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(
            selectors.customers_csv_rows(queryset), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="customers.csv"'
        return response


# --- orders -----------------------------------------------------------------------------------------


class OrderItemInline(TabularInline):
    model = OrderItem
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["sku", "name", "quantity", "unit_price"]
    readonly_fields = fields


class OrderAdminForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["status"]


@admin.register(Order)
class OrderAdmin(ModelAdmin):
    """Read-mostly: orders come from the webshop; a marketer may only correct the status."""

    form = OrderAdminForm
    list_display = ["__str__", "external_id", "customer", "status", "amount", "placed_at"]
    list_filter = ["status", "currency"]
    search_fields = ["external_id", "number"]
    list_select_related = ["customer"]
    show_full_result_count = False
    paginator = EstimatingPaginator  # the customer list's estimated counts: no count(*) over every order
    readonly_fields = [
        "external_id",
        "customer",
        "number",
        "currency",
        "amount",
        "placed_at",
        "created_at",
        "updated_at",
    ]
    fields = [
        "external_id",
        "customer",
        "number",
        "status",
        "amount",
        "placed_at",
        "created_at",
        "updated_at",
    ]
    inlines = [OrderItemInline]

    @admin.display(description=_("total"), ordering="total")
    def amount(self, order):
        """In the order's own currency (the webshop's), with the locale's thousands separators."""
        return format_html(
            '<span class="crm-money" data-amount="{}">{}</span>',
            order.total,
            money_format(order.total, order.currency),
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.order_set_status(order=obj, status=form.cleaned_data["status"])
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        for formset in formsets:  # items are read-only: nothing to save, nothing to log
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


# --- tags -------------------------------------------------------------------------------------------


class TagAdminForm(forms.ModelForm):
    class Meta:
        model = Tag
        fields = ["name"]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if "," in name:
            raise ValidationError(_("A tag name cannot contain a comma."))
        if Tag.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("This tag exists already."))
        return name


@admin.register(Tag)
class TagAdmin(ModelAdmin):
    form = TagAdminForm
    list_display = ["name", "customer_count", "created_at"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(customer_count=Count("customertag"))

    @admin.display(description=_("customers"), ordering="customer_count")
    def customer_count(self, tag):
        return tag.customer_count

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        created = services.tag_create(name=form.cleaned_data["name"])
        obj.pk = created.pk

    def delete_model(self, request, obj):
        services.tag_delete(tag=obj)

    def delete_queryset(self, request, queryset):
        with hooks.customers_changed_batch():  # one note for flows' segment triggers, not one per tag
            for tag in queryset:
                services.tag_delete(tag=tag)


# --- imports ----------------------------------------------------------------------------------------


class ImportJobForm(forms.ModelForm):
    class Meta:
        model = ImportJob
        fields = ["file"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".txt")):
            raise ValidationError(_("Upload a .csv file (UTF-8, the header on the first line)."))
        return upload


@admin.register(ImportJob)
class ImportJobAdmin(ModelAdmin):
    """Upload a CSV: it is imported on a worker; this page shows its progress and the bad rows."""

    form = ImportJobForm
    list_display = [
        "filename",
        "status",
        "percent_done",
        "rows",
        "created",
        "updated",
        "failed",
        "created_at",
    ]
    list_filter = ["status"]
    readonly_fields = [
        "filename",
        "status",
        "percent_done",
        "rows",
        "created",
        "updated",
        "unchanged",
        "failed",
        "resubscribes_ignored",
        "error",
        "bad_rows",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_fields(self, request, obj=None):
        return ["file"] if obj is None else self.readonly_fields

    @admin.display(description=_("progress"))
    def percent_done(self, job):
        return f"{job.percent}%"

    @admin.display(description=_("bad rows (first 1000)"))
    def bad_rows(self, job):
        if not job.errors:
            return "-"
        return format_html(
            "<ol>{}</ol>",
            format_html_join("", "<li>line {}: {}</li>", ((line, reason) for line, reason in job.errors)),
        )

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("customers.view_customer") or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return request.user.has_perm("customers.add_customer")

    def save_model(self, request, obj, form, change):
        job = services.import_job_start(upload=form.cleaned_data["file"], user=request.user)
        obj.pk = job.pk
        obj.refresh_from_db()
