"""Email templates (marketing and transactional): their checks, create, update, delete, and previews of
a template or of a design in the editor."""

from django.core.exceptions import ValidationError

from .content import campaign_classify, design_apply
from .design import design_compile, design_parse
from .lifecycle import EDITABLE_STATUSES
from .models import Campaign, EmailTemplate
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


def template_preview(*, subject, html_body, text_body, customer=None, campaign_name=""):
    """Rendered subject, html, text of a template against a customer (or sample values)."""
    context = {
        "customer": customer_context(customer) if customer is not None else sample_context(),
        "campaign": {"name": campaign_name},
        **preview_links(customer_id=getattr(customer, "pk", None)),
    }
    return render_message(subject=subject, html=html_body, text=text_body, context=context)


def design_preview(*, design, subject="", customer=None, campaign_name=""):
    """A design compiled (html, text, warnings) and rendered for a customer or sample values (rendered:
    a Rendered), for the editor's preview; raises ValidationError naming the design's problem."""
    compiled = design_compile(design if isinstance(design, dict) else design_parse(design) or {})
    rendered = template_preview(
        subject=subject or "(no subject)",
        html_body=compiled["html"],
        text_body=compiled["text"],
        customer=customer,
        campaign_name=campaign_name,
    )
    return compiled, rendered
