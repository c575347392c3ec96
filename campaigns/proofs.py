"""Test copies (proofs) of a campaign, of a template, or of a design as it is in the editor: marked
[Test], sent to a few addresses, no recipient rows, no tracking, no change of state."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.models import Customer

from . import abtests, selectors
from .design import design_compile, design_parse
from .mail import delivery_error, mail_connection
from .messages import CampaignComposer
from .models import Campaign, EmailTemplate
from .readiness import campaign_last_test_set, campaign_preflight
from .rendering import customer_context, sample_context
from .tokens import tenant_base_url

TEST_SEND_MAX = 10


def campaign_test_send(*, campaign, emails, variant=None):
    """Send a test copy to up to TEST_SEND_MAX addresses: marked [Test], no recipient rows, no tracking.
    `variant`: an A/B campaign's variant key (marked [Test B]), or "all" for a copy of each
    (abtests.test_send_variants).

    Returns [{"email", "sent", "error"}], with "variant" for a variant's copy."""
    errors = {}
    if not isinstance(emails, list | tuple) or not emails:
        errors["emails"] = ["Give a list of 1 to 10 email addresses."]
    elif len(emails) > TEST_SEND_MAX:
        errors["emails"] = [f"At most {TEST_SEND_MAX} addresses."]
    else:
        bad = []
        for email in emails:
            try:
                validate_email(email)
            except (ValidationError, TypeError):
                bad.append(f"'{email}' is not a valid email address.")
        if bad:
            errors["emails"] = bad
    try:
        abtests.test_send_variants(campaign=campaign, variant=variant)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    content = campaign_preflight(campaign=campaign, count_audience=False, require_segment=False)
    base_url = tenant_base_url()
    composers = [
        (
            key,
            CampaignComposer(
                campaign=campaign, content=copy, sender=sender, base_url=base_url, test=True, variant=key
            ),
        )
        for key, copy, sender in abtests.test_send_contents(
            campaign=campaign,
            variant=variant,
            content=content,
            sender=selectors.campaign_sender(campaign=campaign),
        )
    ]
    results = []
    mail = mail_connection()
    try:
        for email in emails:
            address = email.strip().lower()
            customer = Customer.objects.filter(email=address).first()
            for key, composer in composers:
                message, _ = composer.compose(
                    recipient_id=0,
                    email=address,
                    customer_id=customer.pk if customer else 0,
                    customer=customer_context(customer) if customer else sample_context(),
                )
                named = {"email": address, **({"variant": key} if key else {})}
                try:
                    mail.send_messages([message])
                    results.append({**named, "sent": True, "error": ""})
                except Exception as exc:  # reported per address; a test send never changes state
                    results.append({**named, "sent": False, "error": delivery_error(exc).reason})
    finally:
        try:
            mail.close()
        except Exception:
            pass
    if campaign.pk and any(result["sent"] for result in results):
        campaign_last_test_set(campaign_id=campaign.pk, content=content)
    return results


def template_test_send(*, template, emails):
    """A test copy of a template (no campaign, no segment needed), as campaign_test_send sends it."""
    campaign = Campaign(name=template.name, template=template, track_opens=False, track_clicks=False)
    return campaign_test_send(campaign=campaign, emails=emails)


def design_test_send(*, design, subject, emails, name=""):
    """A test copy of a design as it is in the editor (saved or not), as template_test_send sends one."""
    compiled = design_compile(design if isinstance(design, dict) else design_parse(design) or {})
    if not (subject or "").strip():
        raise ValidationError({"subject": ["A test copy needs a subject."]})
    template = EmailTemplate(
        name=name or "Design", subject=subject, html_body=compiled["html"], text_body=compiled["text"]
    )
    return template_test_send(template=template, emails=emails)
