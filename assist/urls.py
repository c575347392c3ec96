from django.urls import path

from . import api

urlpatterns = [
    path("ai/segment", api.SegmentFromTextView.as_view(), name="ai-segment"),
    path("ai/subjects", api.SubjectSuggestionsView.as_view(), name="ai-subjects"),
    path("campaigns/<int:pk>/summary", api.CampaignSummaryView.as_view(), name="campaign-summary"),
]
