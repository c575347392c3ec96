"""What saving a campaign's or a template's content derives from it: a design (the block editor's JSON)
compiled into the HTML and text bodies, and the campaign's intent classified from its content."""

from . import hooks, selectors
from .design import design_compile, design_parse


def design_apply(values):
    """When `values` hold a design (the block editor's JSON, as text or a dict), compile it: its HTML
    and text replace `html_body` and `text_body`. No design (None, "") means a raw HTML template.
    Returns the compiler's warnings (e.g. products not shown); raises ValidationError on `design`."""
    design = values.get("design")
    if not isinstance(design, dict):
        design = design_parse(design)
    if not design:
        values["design"] = None
        return []
    compiled = design_compile(design)
    values.update(design=design, html_body=compiled["html"], text_body=compiled["text"])
    return compiled["warnings"]


def campaign_classify(*, campaign):
    """Set the campaign's intent from its content (the classifier plugged into campaigns.hooks);
    True when it changed. The caller saves."""
    content = selectors.campaign_content(campaign=campaign)
    intent, confidence = hooks.classify(
        subject=content["subject"], html=content["html"], text=content["text"]
    )
    changed = (intent, confidence) != (campaign.intent, campaign.intent_confidence)
    campaign.intent, campaign.intent_confidence = intent, confidence
    return changed
