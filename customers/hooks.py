"""Extension points for apps above customers (STYLE 13: arrows never loop).

A higher app (campaigns, for transactional email) registers callables here at start-up; customers'
services call them explicitly after the order change commits. Each hook takes keyword arguments:
  order_recorded(order_id=..., created=bool)          after an order is first recorded or re-delivered
  order_status_changed(order_id=..., old=str, new=str) after an order's status changed
"""

order_recorded = []
order_status_changed = []


def run(hooks, **kwargs):
    for hook in hooks:
        hook(**kwargs)
