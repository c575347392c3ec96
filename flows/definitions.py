"""A flow's definition (PRODUCT.md "Flows"): validation with errors that name the path of the bad
node, and the small readers the engine needs (durations, jumps, the send window).

Jumps (`yes`, `no`) only go forward in the list: a run visits each step at most once (the step log is
unique on run + step), so a loop could never run twice anyway; forward-only says so up front."""

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

from campaigns.models import EmailTemplate
from campaigns.rendering import template_errors
from customers.models import Order
from segments.models import Segment
from segments.rules import RuleError, parse_rules

TRIGGER_TYPES = ("customer_created", "order_placed", "order_status", "segment_entered", "event", "date")
STEP_TYPES = ("delay", "email", "branch", "wait_for", "tag", "exit")
STEP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
DURATION_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
MAX_DURATION_SECONDS = 400 * 86400
MAX_STEPS = 100
ORDER_PLACED = "order_placed"
DEFINITION_FIELDS = ("trigger", "steps", "exit_rules", "reentry", "frequency_cap_hours", "send_window")


def _duration(value, path, errors):
    if not isinstance(value, dict):
        errors.append((path, "must be an object with one of seconds, minutes, hours, days."))
        return None
    units = [unit for unit in value if unit in DURATION_UNITS]
    unknown = [key for key in value if key not in DURATION_UNITS and key not in ("id", "type", "template")]
    if len(units) != 1:
        errors.append((path, "give exactly one of seconds, minutes, hours, days."))
        return None
    if unknown and path.endswith("timeout"):
        errors.append((path, f"unknown key {unknown[0]!r}."))
        return None
    amount = value[units[0]]
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        errors.append((f"{path}.{units[0]}", "must be a positive number."))
        return None
    seconds = amount * DURATION_UNITS[units[0]]
    if seconds > MAX_DURATION_SECONDS:
        errors.append((f"{path}.{units[0]}", "at most 400 days."))
        return None
    return seconds


def duration_seconds(value):
    """Seconds of a validated duration object ({"hours": 1})."""
    for unit, factor in DURATION_UNITS.items():
        if unit in value:
            return float(value[unit]) * factor
    raise ValueError("no duration")


def _rules(value, path, errors):
    try:
        parse_rules(value)
    except RuleError as exc:
        errors.extend((path, message) for message in exc.messages)


def _trigger(trigger, errors, *, required):
    if trigger == {} and not required:  # a draft may not have one yet
        return
    if not isinstance(trigger, dict):
        errors.append(("trigger", "must be an object with a type."))
        return
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        errors.append(("trigger.type", f"must be one of {', '.join(TRIGGER_TYPES)}."))
        return
    if kind == "event":
        if not isinstance(trigger.get("name"), str) or not EVENT_NAME_RE.match(trigger["name"]):
            errors.append(("trigger.name", "an event name (letters, digits, . _ : -; at most 100)."))
    elif kind == "order_placed":
        if trigger.get("min_total") is not None:
            try:
                if Decimal(str(trigger["min_total"])) < 0:
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                errors.append(("trigger.min_total", "must be a decimal ≥ 0."))
        if trigger.get("sku") is not None and (
            not isinstance(trigger["sku"], str) or len(trigger["sku"]) > 100
        ):
            errors.append(("trigger.sku", "must be a SKU (text, at most 100 characters)."))
    elif kind == "order_status":
        statuses = [s for s, _ in Order.STATUS_CHOICES]
        if trigger.get("status") not in statuses:
            errors.append(("trigger.status", f"must be one of {', '.join(statuses)}."))
    elif kind == "segment_entered":
        segment = trigger.get("segment")
        if (
            isinstance(segment, bool)
            or not isinstance(segment, int)
            or not Segment.objects.filter(pk=segment).exists()
        ):
            errors.append(("trigger.segment", "must be the id of a segment."))
        if "backfill" in trigger and not isinstance(trigger["backfill"], bool):
            errors.append(("trigger.backfill", "must be true or false."))
    elif kind == "date":
        attribute = trigger.get("attribute")
        if not isinstance(attribute, str) or not (
            attribute == "created_at" or re.match(r"^attributes\.[A-Za-z0-9_]{1,64}$", attribute)
        ):
            errors.append(("trigger.attribute", "must be created_at or attributes.<key> (a date)."))
        offset = trigger.get("offset_days", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > 366:
            errors.append(("trigger.offset_days", "must be a whole number of days between -366 and 366."))


def _target(step, key, path, index, positions, errors):
    target = step.get(key)
    if target is None:
        return
    if not isinstance(target, str) or target not in positions:
        errors.append((f"{path}.{key}", f"{target!r} is not the id of a step of this flow."))
    elif positions[target] <= index:
        errors.append((f"{path}.{key}", "must jump forward, to a step later in the list."))


def _steps(steps, errors, *, required):
    if steps == [] and not required:  # a draft may not have any yet
        return
    if not isinstance(steps, list) or not steps:
        errors.append(("steps", "must be a non-empty list of steps."))
        return
    if len(steps) > MAX_STEPS:
        errors.append(("steps", f"at most {MAX_STEPS} steps."))
        return
    positions = {}
    for index, step in enumerate(steps):
        path = f"steps[{index}]"
        if not isinstance(step, dict):
            errors.append((path, "must be an object with an id and a type."))
            continue
        step_id = step.get("id")
        if not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
            errors.append((f"{path}.id", "an id of letters, digits, _ or - (at most 64)."))
        elif step_id in positions:
            errors.append((f"{path}.id", f"{step_id!r} is used by another step."))
        else:
            positions[step_id] = index
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        path = f"steps[{index}]"
        kind = step.get("type")
        if kind not in STEP_TYPES:
            errors.append((f"{path}.type", f"must be one of {', '.join(STEP_TYPES)}."))
            continue
        if kind == "delay":
            _duration(step, path, errors)
        elif kind == "email":
            template = step.get("template")
            if (
                isinstance(template, bool)
                or not isinstance(template, int)
                or not EmailTemplate.objects.filter(pk=template, kind="marketing").exists()
            ):
                errors.append((f"{path}.template", "must be the id of a marketing email template."))
            subject = step.get("subject")
            if subject is not None:
                if not isinstance(subject, str) or len(subject) > 998:
                    errors.append((f"{path}.subject", "must be text of at most 998 characters."))
                else:
                    errors.extend((f"{path}.subject", message) for message in template_errors(subject))
        elif kind == "branch":
            if "rules" not in step:
                errors.append((f"{path}.rules", "a branch needs rules (the segment language)."))
            else:
                _rules(step["rules"], f"{path}.rules", errors)
            _target(step, "yes", path, index, positions, errors)
            _target(step, "no", path, index, positions, errors)
        elif kind == "wait_for":
            event = step.get("event")
            if not isinstance(event, str) or not EVENT_NAME_RE.match(event):
                errors.append((f"{path}.event", "an event name, or order_placed."))
            if "timeout" not in step:
                errors.append((f"{path}.timeout", 'a wait needs a timeout, e.g. {"hours": 24}.'))
            else:
                _duration(step["timeout"], f"{path}.timeout", errors)
            _target(step, "yes", path, index, positions, errors)
            _target(step, "no", path, index, positions, errors)
        elif kind == "tag":
            for key in ("add", "remove"):
                names = step.get(key, [])
                if not isinstance(names, list) or not all(
                    isinstance(name, str) and 0 < len(name.strip()) <= 100 for name in names
                ):
                    errors.append((f"{path}.{key}", "must be a list of tag names."))
            if not step.get("add") and not step.get("remove"):
                errors.append((f"{path}.add", "a tag step adds or removes at least one tag."))


def validate_definition(data, *, complete=False):
    """Raise ValidationError({"field": ["path: message", ...]}) for a bad definition (the fields of
    DEFINITION_FIELDS present in `data`). A draft may lack its trigger and steps; `complete` (an
    activation) requires them."""
    errors = []
    if "trigger" in data or complete:
        _trigger(data.get("trigger", {}), errors, required=complete)
    if "steps" in data or complete:
        _steps(data.get("steps", []), errors, required=complete)
    if data.get("exit_rules") is not None:
        _rules(data["exit_rules"], "exit_rules", errors)
    if "reentry" in data:
        reentry = data["reentry"]
        if isinstance(reentry, dict):
            days = reentry.get("after_days")
            if (
                set(reentry) != {"after_days"}
                or isinstance(days, bool)
                or not isinstance(days, int)
                or days < 1
            ):
                errors.append(("reentry", 'must be "never", "always" or {"after_days": N} with N ≥ 1.'))
        elif reentry not in ("never", "always"):
            errors.append(("reentry", 'must be "never", "always" or {"after_days": N} with N ≥ 1.'))
    if "frequency_cap_hours" in data:
        cap = data["frequency_cap_hours"]
        if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 8760:
            errors.append(("frequency_cap_hours", "must be a whole number of hours from 0 (off) to 8760."))
    if data.get("send_window") is not None:
        window = data["send_window"]
        start = window.get("start_hour") if isinstance(window, dict) else None
        end = window.get("end_hour") if isinstance(window, dict) else None
        if (
            not isinstance(window, dict)
            or set(window) != {"start_hour", "end_hour"}
            or any(isinstance(h, bool) or not isinstance(h, int) for h in (start, end))
            or not (0 <= start <= 23 and 1 <= end <= 24 and start != end)
        ):
            errors.append(("send_window", 'must be {"start_hour": 0-23, "end_hour": 1-24}, different hours.'))
    if errors:
        grouped = {}
        for path, message in errors:
            field = path.split(".")[0].split("[")[0]
            grouped.setdefault(field, []).append(f"{path}: {message}" if path != field else message)
        raise ValidationError(grouped)


def step_index(steps):
    return {step["id"]: index for index, step in enumerate(steps)}


def next_step_id(steps, step_id, jump=None):
    """Where a run goes after `step_id`: the jump when given, else the next step ("" after the last)."""
    if jump:
        return jump
    positions = step_index(steps)
    index = positions.get(step_id)
    if index is None or index + 1 >= len(steps):
        return ""
    return steps[index + 1]["id"]


def window_opens(window, time_zone, now):
    """None when `now` is inside the send window, else the moment (UTC-aware) it next opens."""
    if not window:
        return None
    zone = ZoneInfo(time_zone or "UTC")
    local = now.astimezone(zone)
    start, end = window["start_hour"], window["end_hour"]
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if inside:
        return None
    opening = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone).replace(hour=start)
    if opening <= local:
        opening = datetime.combine(
            local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone
        ).replace(hour=start)
    return opening
