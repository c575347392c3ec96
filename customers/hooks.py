"""Extension points for apps above customers (STYLE 13: arrows never loop).

A higher app (campaigns, for transactional email) registers callables here at start-up; customers'
services call them explicitly after the order change commits. Each hook takes keyword arguments:
  order_recorded(order_id=..., created=bool)          after an order is first recorded or re-delivered
  order_status_changed(order_id=..., old=str, new=str) after an order's status changed
"""

import logging

logger = logging.getLogger(__name__)

order_recorded = []
order_status_changed = []


def run(hooks, **kwargs):
    """Call every hook. Hooks run after the change committed: one that fails is logged and must not
    turn the committed change into an error for the caller (nor keep the other hooks from running)."""
    for hook in hooks:
        try:
            hook(**kwargs)
        except Exception:
            logger.exception("customers hook %s failed for %s", getattr(hook, "__qualname__", hook), kwargs)
