"""The marketers' view of campaign results: a list of campaign reports and a stats page per campaign.

`admin:tracking_campaign_stats` (campaign id) is the stats page; the campaign admin links to it.
"""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from core.admin import ReadOnlyMixin
from core.money import money_format, tenant_currency

from . import selectors
from .models import CampaignReport, CampaignStats


def _n(number):
    return f"{number:,}".replace(",", "\u202f")  # thin spaces: 1 000 000 reads at a glance


def _percent(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


def stats_page_context(stats):
    """What the stats template draws: the timeline chart, the funnel bars, the link table."""
    timeline = stats["timeline"]
    chart = {
        # In the tenant's time zone (activated per request), like every date of the admin.
        "labels": [timezone.localtime(row["hour"]).strftime("%b %d %H:%M") for row in timeline],
        "datasets": [
            {
                "label": str(_("Opens")),
                "data": [row["opens"] for row in timeline],
                "borderColor": "var(--color-primary-600)",
                "backgroundColor": "var(--color-primary-600)",
                "displayYAxis": True,
            },
            {
                "label": str(_("Clicks")),
                "data": [row["clicks"] for row in timeline],
                "borderColor": "#f59e0b",
                "backgroundColor": "#f59e0b",
            },
        ],
    }
    sent = stats["sent"]
    # Without delivery reports (SMTP relays send none) "Delivered 0" would alarm: say so instead, and
    # leave the step out of the rates (they are over sent then, as the stats API does).
    delivery_reported = bool(stats["delivered"])
    funnel = [
        {"label": _("Sent"), "value": sent, "percent": 100.0 if sent else 0.0},
        {
            "label": _("Delivered"),
            "value": stats["delivered"],
            "percent": _percent(stats["delivered"], sent),
            "not_reported": not delivery_reported,
        },
        {
            "label": _("Opened"),
            "value": stats["unique_opens"],
            "percent": _percent(stats["unique_opens"], sent),
        },
        {
            "label": _("Clicked"),
            "value": stats["unique_clicks"],
            "percent": _percent(stats["unique_clicks"], sent),
        },
    ]
    cards = [
        {
            "label": _("Recipients"),
            "value": stats["recipients"],
            "note": (
                _("%(n)s pending · %(c)s cancelled") % {"n": stats["pending"], "c": stats["cancelled"]}
                if stats.get("cancelled")
                else _("%(n)s pending") % {"n": stats["pending"]}
            ),
        },
        {
            "label": _("Open rate"),
            "value": f"{100 * stats['open_rate']:.1f}%",
            "note": _("%(u)s unique · %(t)s total · %(m)s machine")
            % {"u": _n(stats["unique_opens"]), "t": _n(stats["opens"]), "m": _n(stats["machine_opens"])},
        },
        {
            "label": _("Click rate"),
            "value": f"{100 * stats['click_rate']:.1f}%",
            "note": _("%(u)s unique · %(t)s total")
            % {"u": _n(stats["unique_clicks"]), "t": _n(stats["clicks"])},
        },
        {
            "label": _("Click-to-open"),
            "value": f"{100 * stats['click_to_open_rate']:.1f}%",
            "note": _("of openers clicked"),
        },
        {
            "label": _("Unsubscribes"),
            "value": _n(stats["unsubscribes"]),
            "note": _("%(b)s bounced · %(c)s complaints · %(f)s failed")
            % {"b": _n(stats["bounced"]), "c": _n(stats["complained"]), "f": _n(stats["failed"])},
        },
        {
            "label": _("Revenue"),
            "value": money_format(stats["revenue"], tenant_currency()),
            "note": _("orders: %(o)s · %(r)s per recipient")
            % {
                "o": _n(stats["orders"]),
                "r": money_format(stats["revenue_per_recipient"], tenant_currency()),
            },
        },
        {
            "label": _("Conversion rate"),
            "value": f"{100 * stats['conversion_rate']:.1f}%",
            "note": _("recipients who bought after a click or open"),
        },
    ]
    for step in funnel:
        step["shown"] = (
            _("not reported by your mail server") if step.get("not_reported") else _n(step["value"])
        )
    links = [
        {
            **row,
            "clicks_shown": _n(row["clicks"]),
            "unique_shown": _n(row["unique_clicks"]),
            "percent": min(100.0, _percent(row["clicks"], stats["clicks"])),
        }
        for row in stats["links"]
    ]
    return {
        "chart": json.dumps(chart),
        "chart_title": _("Opens and clicks per hour (%(zone)s)")
        % {"zone": timezone.get_current_timezone_name()},
        "time_zone": timezone.get_current_timezone_name(),
        "funnel": funnel,
        "cards": cards,
        "links": links,
        "stats": stats,
        "ab_chart": _ab_chart(stats),
    }


AB_COLOURS = ("var(--color-primary-600)", "#f59e0b", "#10b981", "#ef4444")


def _ab_chart(stats):
    """Each variant's probability of being best over time (percent), for a line chart."""
    history = stats.get("history") or []
    if not stats.get("variants") or not history:
        return ""
    keys = [variant["key"] for variant in stats["variants"]]
    return json.dumps(
        {
            "labels": [point["at"][5:16].replace("T", " ") for point in history],
            "datasets": [
                {
                    "label": str(_("Variant %(key)s") % {"key": key}),
                    "data": [round(100 * point["p"].get(key, 0), 1) for point in history],
                    "borderColor": AB_COLOURS[i % len(AB_COLOURS)],
                    "backgroundColor": AB_COLOURS[i % len(AB_COLOURS)],
                }
                for i, key in enumerate(keys)
            ],
        }
    )


def _campaign_admin_url(campaign):
    try:
        return reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    except NoReverseMatch:  # the campaigns admin is optional for this page
        return None


@admin.register(CampaignReport)
class CampaignReportAdmin(ReadOnlyMixin, ModelAdmin):
    list_display = ("name", "status", "sent_at", "unique_opens", "unique_clicks", "unsubscribes", "report")
    list_filter = ("status",)
    search_fields = ("name",)
    ordering = ("-created_at",)
    list_select_related = ("tracking_stats",)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("campaigns.view_campaign")

    def _counter(self, obj, name):
        try:
            return getattr(obj.tracking_stats, name)
        except CampaignStats.DoesNotExist:
            return 0

    @admin.display(description=_("Opened"))
    def unique_opens(self, obj):
        return self._counter(obj, "unique_opens")

    @admin.display(description=_("Clicked"))
    def unique_clicks(self, obj):
        return self._counter(obj, "unique_clicks")

    @admin.display(description=_("Unsubscribed"))
    def unsubscribes(self, obj):
        return self._counter(obj, "unsubscribes")

    @admin.display(description=_("Report"))
    def report(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tracking_campaign_stats", args=[obj.pk]), _("Stats")
        )

    def get_urls(self):
        stats = path(
            "<int:campaign_id>/stats/",
            self.admin_site.admin_view(self.stats_view),
            name="tracking_campaign_stats",
        )
        return [stats, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A report has nothing to edit: its page is the stats page.
        if not str(object_id).isdigit():
            raise Http404
        return redirect("admin:tracking_campaign_stats", int(object_id))

    def stats_view(self, request, campaign_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = selectors.campaign_for_stats(campaign_id=campaign_id)
        if campaign is None:
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Results of “%(name)s”") % {"name": campaign.name},
            "campaign": campaign,
            "campaign_url": _campaign_admin_url(campaign),
            **stats_page_context(selectors.campaign_stats(campaign=campaign, settled_counts_cached=True)),
        }
        return TemplateResponse(request, "tracking/admin/campaign_stats.html", context)
