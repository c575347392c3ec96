"""Extension points for apps above customers (STYLE 13: arrows never loop).

A higher app (campaigns, for transactional email) registers callables here at start-up; customers'
services call them explicitly after the order change commits. Each hook takes keyword arguments:
  order_recorded(order_id=..., created=bool)          after an order is first recorded or re-delivered
  order_status_changed(order_id=..., old=str, new=str) after an order's status changed
  customer_erased(customer_id=..., email=..., external_id=...)
                                                       INSIDE the erase transaction: scrub the copies
                                                       of the customer's personal data a higher app keeps
                                                       (email and external_id as they were, to find them)
  erased_address_returned(email=...)                   INSIDE the transaction that creates a customer with
                                                       an address erased before (a new sign-up): what was
                                                       kept of it as a hash may hold the address again
  customers_changed(customer_ids=[...])                INSIDE the transaction that created customers or
                                                       changed their profile, consent (given) or tags
                                                       (one customer, or a set-based retag): at most one
                                                       cheap statement (flows notes them for its segment
                                                       triggers)
"""

import logging

logger = logging.getLogger(__name__)

order_recorded = []
order_status_changed = []
customer_erased = []
erased_address_returned = []
customers_changed = []


def run(hooks, **kwargs):
    """Call every hook. Hooks run after the change committed: one that fails is logged and must not
    turn the committed change into an error for the caller (nor keep the other hooks from running)."""
    for hook in hooks:
        try:
            hook(**kwargs)
        except Exception:
            logger.exception("customers hook %s failed for %s", getattr(hook, "__qualname__", hook), kwargs)


def run_in_transaction(hooks, **kwargs):
    """Call every hook inside the caller's transaction: a failure aborts the whole change."""
    for hook in hooks:
        hook(**kwargs)
