"""Campaign emails as a source of touches for revenue attribution (customers/attribution.py).

Human hits only: machine opens (prefetchers, scanners, bots, hits too soon after delivery) carry
`is_machine`; test sends have no recipient and so no tracking at all. A click is a `click` touch,
a pixel load an `open` touch.
"""

from customers.attribution import touch_source_register

from .models import HitKind

# Read through tracking_hit_touch: (customer_id, occurred_at) WHERE NOT is_machine, covering the rest.
CAMPAIGN_TOUCHES_SQL = f"""
SELECT h.customer_id, h.occurred_at, CASE h.kind WHEN '{HitKind.CLICK}' THEN 'click' ELSE 'open' END,
       h.campaign_id, NULL::bigint, NULL::text, h.id
FROM tracking_hits h
WHERE NOT h.is_machine
"""


def register():
    touch_source_register(name="campaigns", sql=CAMPAIGN_TOUCHES_SQL)
