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
                                                       changed what a segment can read of them (profile,
                                                       consent, tags, orders, a static list, opens and
                                                       clicks): at most one cheap statement (flows notes
                                                       them for its segment triggers). `customer_ids` is
                                                       a list, or for a big batch a queryset of the
                                                       customers' ids (`.values("id")`) that the hook
                                                       reads inside its statement, never in Python.
                                                       Writers call it through `customers_changed_note`.
"""

import logging
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger(__name__)

# The ids gathered by the innermost customers_changed_batch() (None outside one).
_batch_ids = ContextVar("customers_changed_batch", default=None)

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


def customers_changed_note(*, customer_ids):
    """The customers_changed hooks for these customers, in the caller's transaction: the one way a
    writer of what segments read says so. Inside `customers_changed_batch()` a list of ids is only
    gathered, and noted once when the batch ends."""
    gathered = _batch_ids.get()
    if gathered is not None and isinstance(customer_ids, list | tuple | set):
        gathered.update(customer_ids)
        return
    if isinstance(customer_ids, list | tuple | set) and not customer_ids:
        return
    run_in_transaction(customers_changed, customer_ids=customer_ids)


@contextmanager
def customers_changed_batch():
    """Many single-customer writes in a row (a bulk request's items, an admin action over the
    selected customers): their notes become one customers_changed call with all the ids at the end,
    not one statement per customer. That call runs in the caller's transaction if there is one;
    items that each committed on their own are noted just after them, and a note lost in between
    only waits for flows' sweep (the repair path). So does a batch that raises: it notes nothing,
    and the caller's error is not masked by a second one."""
    if _batch_ids.get() is not None:  # nested: the outer batch notes them
        yield
        return
    gathered = set()
    token = _batch_ids.set(gathered)
    try:
        yield
    finally:
        _batch_ids.reset(token)
    if gathered:
        run_in_transaction(customers_changed, customer_ids=sorted(gathered))
