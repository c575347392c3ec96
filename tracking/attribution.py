"""Campaign and flow emails as a source of touches for revenue attribution (customers/attribution.py).

Human hits only: machine opens (prefetchers, scanners, bots, hits too soon after delivery) carry
`is_machine`; test sends have no recipient and so no tracking at all. A click is a `click` touch,
a pixel load an `open` touch. A flow step's email is a recipient of its flow's carrier campaign with
a step log (flows.models.FlowStepLog.recipient): its touches go to the flow and step, not the carrier.
"""

from customers.attribution import touch_source_register
from flows.models import FlowStepLog

from .models import HitKind

# Read through tracking_hit_touch: (customer_id, occurred_at) WHERE NOT is_machine, covering the rest;
# the few hits found probe the step logs' unique recipient index.
CAMPAIGN_TOUCHES_SQL = f"""
SELECT h.customer_id, h.occurred_at, CASE h.kind WHEN '{HitKind.CLICK}' THEN 'click' ELSE 'open' END,
       CASE WHEN f.id IS NULL THEN h.campaign_id END, f.flow_id, f.step_id::text, h.id
FROM tracking_hits h
LEFT JOIN {FlowStepLog._meta.db_table} f ON f.recipient_id = h.recipient_id
WHERE NOT h.is_machine
"""


def register():
    touch_source_register(name="campaigns", sql=CAMPAIGN_TOUCHES_SQL)
