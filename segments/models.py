from django.db import models
from django.utils import timezone

from customers.models import Customer


class Segment(models.Model):
    KIND_CHOICES = [("dynamic", "Dynamic (rules)"), ("static", "Static (a list of customers)")]

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES, default="dynamic")
    # react-querybuilder JSON; validated and compiled by segments.rules.
    rules = models.JSONField(null=True, blank=True)
    members = models.ManyToManyField(
        Customer, through="SegmentMember", related_name="static_segments", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class SegmentMember(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_unique")]
