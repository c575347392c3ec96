"""The marketers' admin: navigation built around their work, the tenant's name, the dashboard."""

import json

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from .dashboard import dashboard_data, onboarding_draft, onboarding_status


def _on_tenant_host(request):
    tenant = getattr(request, "tenant", None)
    return tenant is not None and tenant.schema_name != "public"


def site_title(request):
    """The tenant's name in the header and the browser tab; the platform's on the public host."""
    return request.tenant.name if _on_tenant_host(request) else _("CRM platform")


def site_url(request):
    """No "Return to site" link: a tenant's host serves the admin, the API and tracking links only."""
    return None


def site_subheader(request):
    return _("CRM and email campaigns") if _on_tenant_host(request) else _("Operators")


def environment_label(request):
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == "public":
        return [_("Platform"), "warning"]
    return [tenant.name, "info"]


def _item(title, icon, url_name, permission=None):
    def link(request):
        try:
            return reverse(url_name)
        except NoReverseMatch:
            return "#"

    item = {"title": title, "icon": icon, "link": link}
    if permission:
        item["permission"] = lambda request: request.user.has_perm(permission)
    return item


def navigation(request):
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == "public":
        return [
            {
                "title": _("Platform"),
                "items": [
                    _item(_("Tenants"), "apartment", "admin:tenancy_tenant_changelist"),
                    _item(_("Domains"), "language", "admin:tenancy_domain_changelist"),
                    _item(_("Operators"), "person", "admin:auth_user_changelist"),
                    _item(_("Event outbox"), "outbox", "admin:events_outboxevent_changelist"),
                    _item(_("Webshop messages"), "move_to_inbox", "admin:events_inboxmessage_changelist"),
                ],
            }
        ]
    return [
        {
            "title": _("CRM"),
            "items": [
                _item(_("Dashboard"), "dashboard", "admin:index"),
                _item(
                    _("Customers"), "group", "admin:customers_customer_changelist", "customers.view_customer"
                ),
                _item(
                    _("Orders"), "shopping_cart", "admin:customers_order_changelist", "customers.view_order"
                ),
                _item(_("Tags"), "sell", "admin:customers_tag_changelist", "customers.view_tag"),
                _item(
                    _("Customer imports"),
                    "upload_file",
                    "admin:customers_importjob_changelist",
                    "customers.add_customer",
                ),
                _item(
                    _("Segments"), "filter_alt", "admin:segments_segment_changelist", "segments.view_segment"
                ),
            ],
        },
        {
            "title": _("Email"),
            "items": [
                _item(
                    _("Templates"),
                    "article",
                    "admin:campaigns_emailtemplate_changelist",
                    "campaigns.view_emailtemplate",
                ),
                _item(
                    _("Campaigns"),
                    "campaign",
                    "admin:campaigns_campaign_changelist",
                    "campaigns.view_campaign",
                ),
                _item(_("Flows"), "account_tree", "admin:flows_flow_changelist", "flows.view_flow"),
                _item(_("Flow runs"), "route", "admin:flows_flowrun_changelist", "flows.view_flowrun"),
                _item(
                    _("Suppressions"),
                    "block",
                    "admin:campaigns_suppression_changelist",
                    "campaigns.view_suppression",
                ),
                _item(
                    _("Sender domains"),
                    "verified",
                    "admin:campaigns_senderdomain_changelist",
                    "campaigns.view_senderdomain",
                ),
                _item(
                    _("Order emails"),
                    "mark_email_read",
                    "admin:events_transactionalemail_changelist",
                    "customers.view_order",
                ),
            ],
        },
        {
            "title": _("Reports"),
            "items": [
                _item(
                    _("Campaign reports"),
                    "monitoring",
                    "admin:tracking_campaignreport_changelist",
                    "campaigns.view_campaign",
                ),
            ],
        },
        {
            "title": _("Administration"),
            "items": [
                _item(_("Users"), "manage_accounts", "admin:auth_user_changelist", "auth.change_user"),
                _item(_("Roles"), "badge", "admin:auth_group_changelist", "auth.change_group"),
                _item(_("Settings"), "settings", "admin:tenant_settings", "tenancy.change_tenant"),
            ],
        },
    ]


def _growth_chart(per_day):
    return json.dumps(
        {
            # "Oct 24", "25", ... "Nov 1", "2": short enough for 30 bars without rotated labels.
            "labels": [
                row["day"].strftime("%b %-d") if i == 0 or row["day"].day == 1 else str(row["day"].day)
                for i, row in enumerate(per_day)
            ],
            "datasets": [
                {
                    "label": str(_("New customers")),
                    "data": [row["new"] for row in per_day],
                    "backgroundColor": "var(--color-primary-600)",
                    "borderColor": "var(--color-primary-600)",
                    # Bars, not hairlines: a day with one new customer reads as a day, not a spike.
                    "maxBarThickness": 18,
                    "barPercentage": 0.8,
                    "categoryPercentage": 0.9,
                    "borderRadius": 3,
                }
            ],
        }
    )


def _admin_url(url_name, *args):
    try:
        return reverse(url_name, args=args)
    except NoReverseMatch:
        return ""


def _with_links(data):
    """Admin links of the dashboard's rows, left empty where the target admin is not installed."""
    for row in data["recent_campaigns"]:
        row["url"] = _admin_url("admin:campaigns_campaign_change", row["campaign"].pk)
        row["stats_url"] = _admin_url("admin:tracking_campaign_stats", row["campaign"].pk)
    for row in data["sending"]:
        row["url"] = _admin_url("admin:campaigns_campaign_change", row["campaign"].pk)
    for row in data["revenue"]["top_campaigns"]:
        row["stats_url"] = _admin_url("admin:tracking_campaign_stats", row["id"])
    data["sending_active"] = sum(1 for row in data["sending"] if not row["finished"])
    data["just_finished"] = sum(1 for row in data["sending"] if row["finished"])
    data["upcoming"] = [
        {"campaign": c, "url": _admin_url("admin:campaigns_campaign_change", c.pk)} for c in data["upcoming"]
    ]
    data["recent_customers"] = [
        {"customer": c, "url": _admin_url("admin:customers_customer_change", c.pk)}
        for c in data["recent_customers"]
    ]
    data["links"] = {
        "customers": _admin_url("admin:customers_customer_changelist"),
        "campaigns": _admin_url("admin:campaigns_campaign_changelist"),
        "add_campaign": _admin_url("admin:campaigns_campaign_add"),
        "add_segment": _admin_url("admin:segments_segment_add"),
        "reports": _admin_url("admin:tracking_campaignreport_changelist"),
    }
    campaigns = data["links"]["campaigns"]
    data["links"]["sending"] = campaigns and campaigns + "?status__exact=sending"
    data["links"]["scheduled"] = campaigns and campaigns + "?status__exact=scheduled"
    return data


def _sender_setup(request):
    """While the account has no sender of its own, the first thing the dashboard asks for: its mail
    would go out from the platform's address."""
    if getattr(request.tenant, "from_email", ""):
        return None
    can_settings = request.user.has_perm("tenancy.change_tenant")
    return {
        "settings_url": _admin_url("admin:tenant_settings") if can_settings else "",
        "domains_url": _admin_url("admin:campaigns_senderdomain_changelist"),
    }


def _onboarding(request):
    """The "Getting started" checklist of a new account: each step with where it is done and whether
    the account's data says it is; None once dismissed or all done."""
    tenant = request.tenant
    if tenant.onboarding_dismissed_at is not None:
        return None
    done = onboarding_status(tenant=tenant)
    if all(done.values()):
        return None
    user = request.user
    settings_url = _admin_url("admin:tenant_settings") if user.has_perm("tenancy.change_tenant") else ""
    draft = None if done["test"] else onboarding_draft()
    test_url = _admin_url("admin:campaigns_campaign_change", draft.pk) if draft else ""
    steps = [
        {
            "key": "sender",
            "label": _("Set your sender: the From name and address"),
            "hint": _("Until then campaigns go out from the platform's address."),
            "url": settings_url,
            "missing_address": not tenant.from_email,
        },
        {
            "key": "domain",
            "label": _("Verify your sender domain"),
            "hint": _("Add the DNS records it shows; mail from a verified domain reaches the inbox."),
            "url": _admin_url("admin:campaigns_senderdomain_changelist"),
        },
        {
            "key": "settings",
            "label": _("Check your time zone, currency and brand"),
            "hint": _("Schedules and dates use the time zone, money the currency; emails take the brand."),
            "url": settings_url,
        },
        {
            "key": "customers",
            "label": _("Import or add customers"),
            "hint": _("A CSV import, one by one, or the webshop through the API."),
            "url": _admin_url("admin:customers_importjob_add") or _admin_url("admin:customers_customer_add"),
            "more_url": _admin_url("admin:customers_customer_add"),
        },
        {
            "key": "segment",
            "label": _("Create a segment"),
            "hint": _("Who gets a campaign: rules on what customers did and bought."),
            "url": _admin_url("admin:segments_segment_add"),
        },
        {
            "key": "test",
            "label": _("Send yourself a test"),
            "hint": _("From a campaign's page: “Send test” beside the content."),
            "url": test_url or _admin_url("admin:campaigns_campaign_add"),
        },
        {
            "key": "campaign",
            "label": _("Send your first campaign"),
            "hint": _("Now or at a time of your choosing."),
            "url": _admin_url("admin:campaigns_campaign_add"),
        },
    ]
    for step in steps:
        step["done"] = done[step["key"]]
    return {
        "steps": steps,
        "done": sum(1 for step in steps if step["done"]),
        "total": len(steps),
        "dismiss_url": _admin_url("admin:tenant_onboarding_dismiss"),
    }


def dashboard_callback(request, context):
    """The dashboard of a tenant host: what a marketer checks first thing in the morning."""
    if _on_tenant_host(request) and request.user.is_active and request.user.is_staff:
        user = request.user
        data = _with_links(dashboard_data())
        context.update(
            {
                "title": _("Dashboard"),
                "dashboard": data,
                "growth_chart": _growth_chart(data["customers"]["per_day"]),
                "can_view_customers": user.has_perm("customers.view_customer"),
                "can_view_campaigns": user.has_perm("campaigns.view_campaign"),
                "can_add_campaign": user.has_perm("campaigns.add_campaign"),
                "can_add_segment": user.has_perm("segments.add_segment"),
                "setup_sender": _sender_setup(request),
                "onboarding": _onboarding(request),
            }
        )
    return context
