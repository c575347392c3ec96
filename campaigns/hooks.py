"""Extension points for apps above campaigns (STYLE 13: arrows never loop).

A higher app (assist) registers callables here at start-up; campaigns' services call them explicitly:
  content_classifiers  classify(subject=str, html=str, text=str) -> (intent, confidence)
                       when a campaign is created or its subject or content change (the first one
                       registered decides; none registered leaves intent "other")
  campaign_sent(campaign_id=...)  INSIDE the transaction that marks a campaign sent: schedule what
                       follows (a failure rolls the transition back, so keep it to a cheap write)
"""

content_classifiers = []
campaign_sent = []


def classify(*, subject, html, text):
    """(intent, confidence) of content from the registered classifier, or ("other", 0.0)."""
    for classifier in content_classifiers:
        return classifier(subject=subject, html=html, text=text)
    return "other", 0.0


def run_in_transaction(hooks, **kwargs):
    """Call every hook inside the caller's transaction: a failure aborts the whole change."""
    for hook in hooks:
        hook(**kwargs)
