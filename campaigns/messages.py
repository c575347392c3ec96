"""What a marketing message looks like: headers, footer, pixel, tracked links, Message-ID.

`CampaignComposer` is built once per campaign (per batch task) and turns one recipient into one
`EmailMultiAlternatives`; everything per-campaign (compiled templates, link ids, base URL) is done
in its constructor so the per-recipient work is rendering plus a few string operations.
"""

import html
import re
from email.utils import formataddr, make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.utils.crypto import salted_hmac

from . import tokens
from .product_cards import ProductCards
from .rendering import compile_message

# <a ... href="..."> in HTML (source or rendered): group 2 is the quote, group 3 the URL as written.
HREF_RE = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
BODY_END_RE = re.compile(r"</body\s*>", re.IGNORECASE)
UNSUBSCRIBE_VAR_RE = re.compile(r"\{\{\s*unsubscribe_url\b")


def trackable_urls(html_source):
    """Distinct http(s) link targets written literally in a template (no template code inside them).

    Links built from variables differ per recipient and cannot be one CampaignLink row; they are
    left as they are. mailto:, tel:, #anchors are not links to track.
    """
    seen = []
    for match in HREF_RE.finditer(html_source or ""):
        url = html.unescape(match.group(3)).strip()
        if "{{" in url or "{%" in url or not url.lower().startswith(("http://", "https://")):
            continue
        if url not in seen:
            seen.append(url)
    return seen


def with_tracked_links(html_source, links):
    """The template with each trackable link's href replaced by `{{ crm_links.l<link id> }}`.

    Done once per campaign on the source, so per recipient the renderer fills in the click URLs
    instead of a regex pass over every rendered message. Returns (source, link ids used)."""
    used = []

    def replace(match):
        url = html.unescape(match.group(3)).strip()
        link_id = links.get(url)
        if link_id is None:
            return match.group(0)
        used.append(link_id)
        return f"{match.group(1)}{match.group(2)}{{{{ crm_links.l{link_id} }}}}{match.group(2)}"

    return HREF_RE.sub(replace, html_source or ""), sorted(set(used))


def sending_domain(from_email):
    return from_email.rpartition("@")[2].lower() or "localhost"


def message_id(*, campaign_id, recipient_id, domain, schema=None):
    """Deterministic per recipient, so a resend after a crash carries the same Message-ID."""
    schema = schema or connection.schema_name
    digest = salted_hmac(
        "campaigns.message-id", f"{schema}.{campaign_id}.{recipient_id}", algorithm="sha256"
    ).hexdigest()[:16]
    return f"<c{campaign_id}.r{recipient_id}.{digest}@{domain}>"


def _insert_before_body_end(document, snippet):
    matches = list(BODY_END_RE.finditer(document))
    if not matches:
        return document + snippet
    at = matches[-1].start()
    return document[:at] + snippet + document[at:]


class CampaignComposer:
    """Builds the personalised messages of one campaign."""

    def __init__(
        self, *, campaign, content, sender, links=None, base_url, test=False, variant="", purchases=None
    ):
        """`content`: dict(subject, html, text); `sender`: dict(from_email, from_name, reply_to,
        postal_address); `links`: {url: CampaignLink id} for click tracking; `variant`: the A/B
        variant a test copy shows (its subject says which); `purchases`: the "last bought" products
        of another composer of the campaign (an A/B test's), shared so a batch reads them once."""
        self.variant = variant or ""
        self.campaign_id = campaign.id or 0  # 0: a test copy of an unsaved campaign
        self.campaign_name = campaign.name
        self.campaign_data = {"name": campaign.name}
        # The tenant's switches (its settings page) win over the campaign's: off means off everywhere.
        tenant = getattr(connection, "tenant", None)
        self.track_opens = campaign.track_opens and getattr(tenant, "track_opens", True) and not test
        track_clicks = campaign.track_clicks and getattr(tenant, "track_clicks", True) and not test
        self.test = test
        # Product cards as the shop has them now, and who gets which "last bought" products; their
        # product links are the campaign's links too.
        self.product_cards = ProductCards(
            html_source=content["html"],
            text_source=content["text"],
            campaign_id=campaign.id if track_clicks else None,
            purchases=purchases,
        )
        content = {**content, "html": self.product_cards.html, "text": self.product_cards.text}
        links = {**(links or {}), **self.product_cards.link_ids}
        # (a "last bought" block's links become known batch by batch)
        self.track_clicks = bool(track_clicks and (links or self.product_cards.slots))
        html_source, self.tracked_link_ids = content["html"], []
        if self.track_clicks:
            html_source, self.tracked_link_ids = with_tracked_links(content["html"], links)
        self.compiled = compile_message(subject=content["subject"], html=html_source, text=content["text"])
        self.html_has_unsubscribe = bool(UNSUBSCRIBE_VAR_RE.search(content["html"] or ""))
        text_source = content["text"] if (content["text"] or "").strip() else content["html"]
        self.text_has_unsubscribe = bool(UNSUBSCRIBE_VAR_RE.search(text_source or ""))
        self.links = links or {}
        self.base_url = base_url
        self.from_email = sender["from_email"]
        self.from_header = (
            formataddr((sender["from_name"], sender["from_email"]))
            if sender["from_name"]
            else sender["from_email"]
        )
        self.reply_to = [sender["reply_to"]] if sender["reply_to"] else []
        self.postal_address = sender["postal_address"]
        self.domain = sending_domain(self.from_email)
        self.schema = connection.schema_name
        self.mailto = settings.MAIL_UNSUBSCRIBE_MAILTO

    def prepare(self, recipients):
        """Load what a batch's recipients (rows or claims: `customer_id`) need beyond their row, for
        all of them at once (the "last bought" products: one query, and none without such cards)."""
        self.product_cards.prepare([recipient.customer_id for recipient in recipients])

    def context(
        self, *, customer, unsubscribe_url, preferences_url, links=None, web_version_url="", products=None
    ):
        return {
            "customer": customer,
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
            "web_version_url": web_version_url,
            "campaign": self.campaign_data,
            "crm_links": links or {},
            "products": products or {},
        }

    def _render(self, *, recipient_id, customer_id, customer, unsubscribe):
        preferences = tokens.preferences_url(self.base_url, customer_id)
        links = {
            f"l{link_id}": tokens.click_url(self.base_url, recipient_id, link_id)
            for link_id in self.tracked_link_ids
        }
        # A test copy names no recipient: its web version link says so (tracking/views.web_version).
        web = (
            f"{self.base_url}/v/test"
            if self.test
            else tokens.web_version_url(self.base_url, recipient_id, schema=self.schema)
        )
        return self.compiled.render(
            self.context(
                customer=customer,
                unsubscribe_url=unsubscribe,
                preferences_url=preferences,
                links=links,
                web_version_url=web,
                products=self.product_cards.context(
                    customer_id,
                    click_url=(lambda link_id: tokens.click_url(self.base_url, recipient_id, link_id))
                    if self.track_clicks
                    else None,
                ),
            )
        )

    def web_version(self, *, recipient_id, customer_id, customer):
        """The recipient's personalised HTML as a page: the message's HTML with its footer, no pixel."""
        unsubscribe = tokens.unsubscribe_url(self.base_url, recipient_id)
        body_html = self._render(
            recipient_id=recipient_id, customer_id=customer_id, customer=customer, unsubscribe=unsubscribe
        ).html
        if not self.html_has_unsubscribe:
            body_html = _insert_before_body_end(body_html, self._html_footer(unsubscribe))
        return body_html

    def compose(self, *, recipient_id, email, customer_id, customer):
        """(EmailMultiAlternatives, message_id) for one recipient; `customer` is customer_context()."""
        unsubscribe_token = tokens.make_token(tokens.TokenKind.UNSUBSCRIBE, recipient_id, schema=self.schema)
        unsubscribe = f"{self.base_url}/u/{unsubscribe_token}"
        rendered = self._render(
            recipient_id=recipient_id, customer_id=customer_id, customer=customer, unsubscribe=unsubscribe
        )
        body_html, body_text = rendered.html, rendered.text
        if not self.html_has_unsubscribe:
            body_html = _insert_before_body_end(body_html, self._html_footer(unsubscribe))
        if not self.text_has_unsubscribe:
            body_text = body_text.rstrip("\n") + self._text_footer(unsubscribe)
        if self.track_opens:
            pixel = tokens.open_url(self.base_url, recipient_id)
            body_html = _insert_before_body_end(
                body_html,
                f'<img src="{pixel}" width="1" height="1" alt="" '
                'style="display:block;border:0;width:1px;height:1px;" />',
            )
        if self.test:  # every test copy is a new message (clients hide repeated Message-IDs)
            mid = make_msgid(domain=self.domain)
        else:
            mid = message_id(
                campaign_id=self.campaign_id,
                recipient_id=recipient_id,
                domain=self.domain,
                schema=self.schema,
            )
        list_unsubscribe = f"<{unsubscribe}>"
        if self.mailto:
            list_unsubscribe += f", <mailto:{self.mailto}?subject=unsubscribe-{unsubscribe_token}>"
        headers = {
            "Message-ID": mid,
            "List-Unsubscribe": list_unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        subject = rendered.subject
        if self.test:
            subject = f"[Test {self.variant}] {subject}" if self.variant else f"[Test] {subject}"
            headers["X-CRM-Test"] = "yes"
            if self.variant:
                headers["X-CRM-Variant"] = self.variant
        message = EmailMultiAlternatives(
            subject=subject,
            body=body_text,
            from_email=self.from_header,
            to=[email],
            reply_to=self.reply_to,
            headers=headers,
        )
        message.attach_alternative(body_html, "text/html")
        # ESP backends (anymail) carry these to their webhooks, which name the recipient back to us.
        message.metadata = {"schema": self.schema, "campaign": self.campaign_id, "recipient": recipient_id}
        message.tags = ["test" if self.test else "campaign"]
        return message, mid

    def _html_footer(self, unsubscribe):
        address = html.escape(self.postal_address).replace("\n", "<br>")
        return (
            '<div style="margin-top:24px;font-size:12px;color:#666;text-align:center;">'
            + (f"<p>{address}</p>" if address else "")
            + f'<p><a href="{html.escape(unsubscribe)}">Unsubscribe</a></p></div>'
        )

    def _text_footer(self, unsubscribe):
        lines = ["", "", "--"]
        if self.postal_address:
            lines.append(self.postal_address)
        lines.append(f"Unsubscribe: {unsubscribe}")
        return "\n".join(lines) + "\n"
