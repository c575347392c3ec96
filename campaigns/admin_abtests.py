"""The A/B test part of the campaign composer: variants side by side, the metric and the wait.

Kept apart from admin.py (and drawn by its own template, admin/campaigns/campaign/ab_test.html) so the
composer's other parts can change without touching it. The fields are plain form fields; `clean`
turns them into the campaign's `variants` and `ab_test` and validates them with the same service as
the API (abtests.ab_validate), so the admin and the API accept exactly the same tests.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import abtests

VARIANT_INPUTS = ("subject", "from_name", "html_body")
INPUT_CLASSES = "border border-base-200 bg-white rounded-default px-2 py-1 w-full text-sm dark:bg-base-900 dark:border-base-700"


def _field_name(key, part):
    return f"variant_{key}_{part}"


def variant_from_form(data, key):
    """One variant as the composer's fields hold it now (saved or not), for the live preview: what
    it sets over the campaign's own, as `ab_values` reads it."""
    entry = {"key": key}
    for part in VARIANT_INPUTS:
        value = (data.get(_field_name(key, part)) or "").strip()
        if value:
            entry[part] = value
    return entry


class ABTestFormMixin(forms.Form):
    ab_enabled = forms.BooleanField(
        label=_("A/B test this campaign"),
        required=False,
        help_text=_("Send variants to a random sample first; the rest of the audience gets the winner."),
    )
    ab_metric = forms.ChoiceField(
        label=_("Winner by"),
        required=False,
        choices=[
            ("open_rate", _("Open rate")),
            ("click_rate", _("Click rate")),
            ("revenue", _("Revenue per recipient")),
        ],
        initial="open_rate",
    )
    ab_test_percent = forms.IntegerField(
        label=_("Test sample (% of the audience)"), required=False, initial=20, min_value=1, max_value=90
    )
    ab_wait_hours = forms.DecimalField(
        label=_("Wait before deciding (hours)"),
        required=False,
        initial=4,
        min_value=0,
        max_digits=6,
        decimal_places=2,
    )
    ab_min_confidence = forms.IntegerField(
        label=_("Confidence needed (%)"),
        required=False,
        initial=95,
        min_value=50,
        max_value=99,
        help_text=_("Below it at the end of the wait, the best observed variant wins (“timeout”)."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key in abtests.VARIANT_KEYS:
            self.fields[_field_name(key, "subject")] = forms.CharField(
                label=_("Subject"), required=False, max_length=998
            )
            self.fields[_field_name(key, "from_name")] = forms.CharField(
                label=_("From name"), required=False, max_length=200
            )
            self.fields[_field_name(key, "html_body")] = forms.CharField(
                label=_("HTML body"), required=False, widget=forms.Textarea(attrs={"rows": 6})
            )
        for name in self.ab_field_names():
            widget = self.fields[name].widget
            if not isinstance(widget, forms.CheckboxInput):
                widget.attrs.setdefault("class", INPUT_CLASSES)
        instance = getattr(self, "instance", None)
        if instance is not None and instance.pk and instance.variants:
            self.initial["ab_enabled"] = True
            for variant in instance.variants:
                for part in VARIANT_INPUTS:
                    self.initial[_field_name(variant["key"], part)] = variant.get(part, "")
            test = instance.ab_test or {}
            self.initial.update(
                {
                    "ab_metric": test.get("metric", "open_rate"),
                    "ab_test_percent": test.get("test_percent", 20),
                    "ab_wait_hours": round(test.get("wait_seconds", 14400) / 3600, 2),
                    "ab_min_confidence": round(100 * test.get("min_confidence", 0.95)),
                }
            )
        if instance is not None and instance.pk and instance.status not in ("draft", "scheduled"):
            for name in self.ab_field_names():
                self.fields[name].disabled = True

    @classmethod
    def ab_field_names(cls):
        names = ["ab_enabled", "ab_metric", "ab_test_percent", "ab_wait_hours", "ab_min_confidence"]
        return names + [_field_name(key, part) for key in abtests.VARIANT_KEYS for part in VARIANT_INPUTS]

    def variant_rows(self):
        """The variants' bound fields, side by side in the template."""
        return [
            {"key": key, "fields": [self[_field_name(key, part)] for part in VARIANT_INPUTS]}
            for key in abtests.VARIANT_KEYS
        ]

    def ab_values(self):
        """(variants, ab_test) as the campaign stores them, from the cleaned fields (validated)."""
        data = self.cleaned_data
        if not data.get("ab_enabled"):
            return [], None
        variants = []
        for key in abtests.VARIANT_KEYS:
            entry = {"key": key}
            for part in VARIANT_INPUTS:
                value = (data.get(_field_name(key, part)) or "").strip()
                if value:
                    entry[part] = value
            if len(entry) > 1 or key in ("A", "B"):
                variants.append(entry)
        wait = data.get("ab_wait_hours")
        confidence = data.get("ab_min_confidence")
        test = {
            "test_percent": data.get("ab_test_percent") or abtests.AB_TEST_DEFAULTS["test_percent"],
            "metric": data.get("ab_metric") or "open_rate",
            "wait_seconds": int(wait * 3600)
            if wait is not None
            else abtests.AB_TEST_DEFAULTS["wait_seconds"],
            "min_confidence": confidence / 100 if confidence is not None else 0.95,
        }
        return variants, test

    def clean_ab(self):
        """Validate the test; errors land on the field they name. Returns (variants, ab_test)."""
        variants, test = self.ab_values()
        try:
            return abtests.ab_validate(variants=variants, ab_test=test)
        except ValidationError as error:
            for path, messages in error.message_dict.items():
                self.add_error(self._field_for(path, variants), messages)
            return [], None

    def _field_for(self, path, variants):
        if path.startswith("ab_test."):
            name = {
                "ab_test.metric": "ab_metric",
                "ab_test.test_percent": "ab_test_percent",
                "ab_test.wait_seconds": "ab_wait_hours",
                "ab_test.min_confidence": "ab_min_confidence",
            }.get(path)
            return name or "ab_enabled"
        if path.startswith("variants["):
            index = int(path[len("variants[") : path.index("]")])
            key = variants[index]["key"] if index < len(variants) else "A"
            part = path.partition("].")[2] or "subject"
            part = {"html": "html_body", "text": "html_body", "text_body": "html_body"}.get(part, part)
            name = _field_name(key, part)
            return name if name in self.fields else _field_name(key, "subject")
        return "ab_enabled"
