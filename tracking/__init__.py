"""Tracking: what happened to the email a campaign sent.

- Hit path (views.open_pixel, views.click_redirect): one INSERT ... SELECT per hit into tracking_hits
  (hits.hit_record_open / hit_record_click); machines are flagged there (machine.py, and hits
  within the tenant's window after delivery). The tenant's roll-up marker (tenancy/work.py) is
  written at most once a second per process, so a hit stays one statement.
- Roll-up (tasks.rollup_all_tenants, beat every 15 s: one task per tenant with a marker ->
  tasks.rollup_tenant_hits -> rollup.hits_rollup): first open/click times
  on campaign_recipients, counters (CampaignStats, LinkStats, HourlyStats, LinkClick), the
  email_opened / email_clicked interactions and the email.opened / email.clicked events.
- Unsubscribe and preference centre (views.unsubscribe, views.preferences -> preferences.py).
- ESP delivery webhooks (webhooks.py, anymail's tracking signal -> delivery.delivery_event_apply):
  recipient status, suppressions.
- Stats (selectors.campaign_stats): the API (api.py, GET /api/campaigns/{id}/stats) and the admin
  report page (admin.py, URL name admin:tracking_campaign_stats).
"""
