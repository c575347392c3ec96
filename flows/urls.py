from django.urls import path

from . import api

urlpatterns = [
    path("flows", api.FlowListView.as_view(), name="flow-list"),
    path("flows/<int:pk>", api.FlowDetailView.as_view(), name="flow-detail"),
    path("flows/<int:pk>/activate", api.FlowActivateView.as_view(), name="flow-activate"),
    path("flows/<int:pk>/pause", api.FlowPauseView.as_view(), name="flow-pause"),
    path("flows/<int:pk>/archive", api.FlowArchiveView.as_view(), name="flow-archive"),
    path("flows/<int:pk>/stats", api.FlowStatsView.as_view(), name="flow-stats"),
    path("flows/<int:pk>/runs", api.FlowRunsView.as_view(), name="flow-runs"),
    path("events", api.EventView.as_view(), name="event-create"),
]
