"""Transactional email (order confirmation, shipping notice): registered with customers' order hooks."""


def register():
    """Called from CampaignsConfig.ready(): plug transactional email into customers.hooks."""
