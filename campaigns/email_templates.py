"""Email templates (marketing and transactional): their checks, create, update, delete, and previews of
a template or of a design in the editor."""

from dataclasses import replace

from django.core.exceptions import ValidationError

from . import transactional
from .content import campaign_classify, design_apply
from .design import design_compile, design_parse
from .lifecycle import EDITABLE_STATUSES
from .models import Campaign, EmailTemplate
from .product_cards import ProductCards, cards_refresh_text
from .rendering import customer_context, render_message, sample_context, validate_sources
from .tokens import preferences_url, tenant_base_url


def template_validate(*, kind, key, subject, html_body, text_body, instance=None):
    errors = {}
    if kind == "transactional":
        if not key:
            errors["key"] = ["A transactional template needs a key (order_confirmation or order_shipped)."]
        elif (
            EmailTemplate.objects.filter(kind="transactional", key=key)
            .exclude(pk=getattr(instance, "pk", None))
            .exists()
        ):
            errors["key"] = [f"There is already a transactional template for '{key}'."]
    elif key:
        errors["key"] = ["Only transactional templates have a key."]
    if not (subject or "").strip():
        errors["subject"] = ["A template needs a subject."]
    try:
        validate_sources(subject=subject or "", html_body=html_body or "", text_body=text_body or "")
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if not (html_body or "").strip() and not (text_body or "").strip():
        errors.setdefault("html_body", []).append("A template needs an HTML or a text body.")
    if errors:
        raise ValidationError(errors)


def template_create(*, name, subject, html_body="", text_body="", kind="marketing", key=None, design=None):
    key = key or None
    values = {"design": design, "html_body": html_body, "text_body": text_body}
    design_apply(values)
    html_body, text_body = values["html_body"], values["text_body"]
    template_validate(kind=kind, key=key, subject=subject, html_body=html_body, text_body=text_body)
    return EmailTemplate.objects.create(
        name=name,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        kind=kind,
        key=key,
        design=values["design"],
    )


def template_update(*, template, **changes):
    values = {
        field: changes.get(field, getattr(template, field))
        for field in ("name", "subject", "html_body", "text_body", "kind", "key", "design")
    }
    values["key"] = values["key"] or None
    design_apply(values)
    template_validate(
        kind=values["kind"],
        key=values["key"],
        subject=values["subject"],
        html_body=values["html_body"],
        text_body=values["text_body"],
        instance=template,
    )
    for field, value in values.items():
        setattr(template, field, value)
    template.save()
    for campaign in Campaign.objects.filter(template=template, status__in=EDITABLE_STATUSES):
        if campaign_classify(campaign=campaign):
            campaign.save(update_fields=["intent", "intent_confidence", "updated_at"])
    return template


def template_delete(*, template):
    """Campaigns that used it keep their frozen content; drafts lose their content and must pick another."""
    template.delete()


def preview_links(*, customer_id=None):
    """Links for a preview: real-looking, but they name no recipient."""
    base = tenant_base_url()
    return {
        "unsubscribe_url": f"{base}/u/preview",
        "web_version_url": f"{base}/v/preview",
        "preferences_url": preferences_url(base, customer_id) if customer_id else f"{base}/p/preview",
    }


def template_preview(*, subject, html_body, text_body, customer=None, campaign_name="", kind="marketing"):
    """Rendered subject, html, text of a template against a customer (or sample values); a
    transactional one as an order email goes out (an order, the preference centre, no unsubscribe)."""
    if kind == "transactional":
        html_body, text_body = cards_refresh_text(html_body, text_body)
        rendered = render_message(
            subject=subject,
            html=html_body,
            text=text_body,
            context=transactional.transactional_preview_context(customer=customer),
        )
        return replace(rendered, html=transactional.without_empty_links(rendered.html))
    # Product cards as they would go out now: current product data, the customer's last bought.
    cards = ProductCards(html_source=html_body, text_source=text_body)
    context = {
        "customer": customer_context(customer) if customer is not None else sample_context(),
        "campaign": {"name": campaign_name},
        "products": cards.context(getattr(customer, "pk", None) or 0),
        **preview_links(customer_id=getattr(customer, "pk", None)),
    }
    return render_message(subject=subject, html=cards.html, text=cards.text, context=context)


def design_preview(*, design, subject="", customer=None, campaign_name="", kind="marketing"):
    """A design compiled (html, text, warnings) and rendered for a customer or sample values (rendered:
    a Rendered), for the editor's preview; raises ValidationError naming the design's problem."""
    compiled = design_compile(design if isinstance(design, dict) else design_parse(design) or {})
    rendered = template_preview(
        subject=subject or "(no subject)",
        html_body=compiled["html"],
        text_body=compiled["text"],
        customer=customer,
        campaign_name=campaign_name,
        kind=kind,
    )
    return compiled, rendered
