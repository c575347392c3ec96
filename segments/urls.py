from django.urls import path

from . import api

urlpatterns = [
    path("segments", api.SegmentListView.as_view(), name="segment-list"),
    path("segments/preview", api.SegmentPreviewView.as_view(), name="segment-preview"),
    path("segments/<int:pk>", api.SegmentDetailView.as_view(), name="segment-detail"),
    path("segments/<int:pk>/customers", api.SegmentCustomersView.as_view(), name="segment-customers"),
    path("segments/<int:pk>/members", api.SegmentMembersView.as_view(), name="segment-members"),
    path("segments/<int:pk>/freeze", api.SegmentFreezeView.as_view(), name="segment-freeze"),
]
