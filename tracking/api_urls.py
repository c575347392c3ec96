from django.urls import path

from .api import CampaignStatsView

urlpatterns = [
    path("campaigns/<int:pk>/stats", CampaignStatsView.as_view(), name="campaign-stats"),
]
