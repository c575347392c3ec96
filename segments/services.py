"""Writes of segments: create, update, delete, static members, freezing a result into a static list."""

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from .models import Segment, SegmentMember
from .rules import RuleError, parse_rules
from .selectors import customers_matchable, segment_customers

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_MEMBER_IDS = 10_000

# Apps above segments refuse a delete by raising django's ValidationError while they still need the
# segment (campaigns: a scheduled campaign sends to it; flows: a live flow starts from it). Callables
# take keyword argument `segment`; filled in their AppConfig.ready() (STYLE 13). The API answers 409,
# the admin lists the reasons where it lists protected objects.
DELETE_GUARDS = []
# How many of the things that still need a segment a guard's refusal names.
DELETE_GUARD_NAMES_SHOWN = 3


class SegmentStateError(Exception):
    """The segment's kind or use does not allow this (members of a dynamic segment, deleting a segment
    a higher app still needs): a 409."""


def _clean_text(value, *, field, max_length, required):
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({field: ["Must be text."]})
    value = value.strip()
    if "\x00" in value:
        raise ValidationError({field: ["NUL characters are not allowed."]})
    if required and not value:
        raise ValidationError({field: ["This field may not be blank."]})
    if len(value) > max_length:
        raise ValidationError({field: [f"Ensure this field has no more than {max_length} characters."]})
    return value


def rules_validate(rules):
    """The rules if valid, else ValidationError({"rules": [path messages]})."""
    try:
        parse_rules(rules)
    except RuleError as error:
        raise ValidationError({"rules": error.messages})
    return rules


def segment_create(*, name, description="", kind="dynamic", rules=None, customer_ids=None) -> Segment:
    """A dynamic segment needs valid rules; a static one takes optional initial `customer_ids`."""
    name = _clean_text(name, field="name", max_length=MAX_NAME_LENGTH, required=True)
    description = _clean_text(
        description, field="description", max_length=MAX_DESCRIPTION_LENGTH, required=False
    )
    if kind not in ("dynamic", "static"):
        raise ValidationError({"kind": [f"'{kind}' is not 'dynamic' or 'static'."]})
    if kind == "dynamic":
        if rules is None:
            raise ValidationError({"rules": ["A dynamic segment needs rules."]})
        rules_validate(rules)
        if customer_ids:
            raise ValidationError({"customer_ids": ["Only a static segment has a member list."]})
    elif rules is not None:
        raise ValidationError({"rules": ["A static segment has no rules (it is a list of customers)."]})
    ids = _existing_customer_ids(customer_ids or [])
    with transaction.atomic():
        segment = Segment.objects.create(name=name, description=description, kind=kind, rules=rules)
        if ids:
            _members_insert(segment, ids)
    return segment


def segment_update(*, segment, **changes) -> Segment:
    """Change name, description and (dynamic) rules. The kind never changes: freeze instead."""
    allowed = {"name", "description", "rules", "kind"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
    if "kind" in changes and changes["kind"] != segment.kind:
        raise ValidationError(
            {"kind": ["The kind of a segment cannot change; freeze a dynamic segment into a static one."]}
        )
    fields = {}
    if "name" in changes:
        fields["name"] = _clean_text(changes["name"], field="name", max_length=MAX_NAME_LENGTH, required=True)
    if "description" in changes:
        fields["description"] = _clean_text(
            changes["description"], field="description", max_length=MAX_DESCRIPTION_LENGTH, required=False
        )
    if "rules" in changes:
        if segment.kind == "static":
            if changes["rules"] is not None:
                raise ValidationError(
                    {"rules": ["A static segment has no rules (it is a list of customers)."]}
                )
        else:
            if changes["rules"] is None:
                raise ValidationError({"rules": ["A dynamic segment needs rules."]})
            fields["rules"] = rules_validate(changes["rules"])
    for name, value in fields.items():
        setattr(segment, name, value)
    segment.save()
    return segment


def segment_delete_refusals(*, segment) -> list[str]:
    """Every reason a higher app gives for keeping the segment (empty when it may go)."""
    reasons = []
    for guard in DELETE_GUARDS:
        try:
            guard(segment=segment)
        except ValidationError as error:
            reasons.extend(error.messages)
    return reasons


def segment_delete_refuse_while_used(*, users, reason) -> None:
    """The shared body of a DELETE_GUARDS callable: a ValidationError when `users` (a queryset of the
    names of what still needs the segment, in the order to list them) has any. `reason` says why and
    what to do, with `{names}` where the first few names go."""
    names = list(users[:DELETE_GUARD_NAMES_SHOWN])
    if names:
        raise ValidationError(reason.format(names=", ".join(names)))


def segment_delete(*, segment) -> None:
    """Delete the segment, unless a higher app still needs it (SegmentStateError naming why)."""
    reasons = segment_delete_refusals(segment=segment)
    if reasons:
        raise SegmentStateError(" ".join(reasons))
    segment.delete()


def _existing_customer_ids(customer_ids, *, field="customer_ids"):
    """The ids, deduplicated, if every one is a matchable customer of this tenant; else a 400."""
    if not isinstance(customer_ids, list | tuple):
        raise ValidationError({field: ["Must be a list of customer ids."]})
    if len(customer_ids) > MAX_MEMBER_IDS:
        raise ValidationError({field: [f"At most {MAX_MEMBER_IDS} ids at a time."]})
    ids = []
    for index, value in enumerate(customer_ids):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
            raise ValidationError({field: [f"{field}[{index}]: {value!r} is not a customer id."]})
        ids.append(value)
    ids = sorted(set(ids))
    found = set(customers_matchable().filter(id__in=ids).values_list("id", flat=True))
    missing = [value for value in ids if value not in found]
    if missing:
        shown = ", ".join(str(value) for value in missing[:20]) + (" …" if len(missing) > 20 else "")
        raise ValidationError({field: [f"No such customers: {shown}."]})
    return ids


def _members_insert(segment, ids):
    SegmentMember.objects.bulk_create(
        [SegmentMember(segment=segment, customer_id=customer_id) for customer_id in ids],
        ignore_conflicts=True,
        batch_size=1000,
    )


def segment_members_change(*, segment, add=(), remove=()) -> dict:
    """Add and remove customers of a static segment in one transaction; ``{"added", "removed"}``.

    Adding a member twice or removing a non-member changes nothing and is not an error; ids of
    customers that do not exist (or are erased) are a 400 and nothing changes.
    """
    if segment.kind != "static":
        raise SegmentStateError("Only a static segment has a member list; this one is dynamic.")
    add_ids = _existing_customer_ids(list(add) if isinstance(add, tuple) else add, field="add")
    if not isinstance(remove, list | tuple):
        raise ValidationError({"remove": ["Must be a list of customer ids."]})
    for index, value in enumerate(remove):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError({"remove": [f"remove[{index}]: {value!r} is not a customer id."]})
    overlap = set(add_ids) & set(remove)
    if overlap:
        raise ValidationError({"add": [f"Customers both added and removed: {sorted(overlap)[:20]}."]})
    with transaction.atomic():
        Segment.objects.select_for_update().filter(pk=segment.pk).first()
        before = SegmentMember.objects.filter(segment=segment).count()
        if add_ids:
            _members_insert(segment, add_ids)
        after_add = SegmentMember.objects.filter(segment=segment).count()
        removed = 0
        if remove:
            removed, _ = SegmentMember.objects.filter(segment=segment, customer_id__in=list(remove)).delete()
        segment.updated_at = timezone.now()
        segment.save(update_fields=["updated_at"])
    return {"added": after_add - before, "removed": removed}


def segment_freeze(*, segment, name=None) -> Segment:
    """Save who the segment matches now as a new static segment (one INSERT ... SELECT)."""
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    name = _clean_text(
        name if name is not None else f"{segment.name} ({stamp})"[:MAX_NAME_LENGTH],
        field="name",
        max_length=MAX_NAME_LENGTH,
        required=True,
    )
    try:
        audience = segment_customers(segment=segment)
    except RuleError as error:
        raise ValidationError({"rules": error.messages})
    with transaction.atomic():
        frozen = Segment.objects.create(
            name=name,
            description=f"Snapshot of “{segment.name}” taken {stamp}."[:MAX_DESCRIPTION_LENGTH],
            kind="static",
        )
        select_sql, params = audience.order_by().values("id").query.sql_with_params()
        member_table = connection.ops.quote_name(SegmentMember._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {member_table} (segment_id, customer_id, added_at) "
                f"SELECT %s, matched.id, %s FROM ({select_sql}) AS matched",
                [frozen.pk, timezone.now(), *params],
            )
    return frozen
