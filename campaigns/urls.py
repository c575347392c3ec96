from django.urls import path

from . import api

urlpatterns = [
    path("templates", api.TemplateListView.as_view(), name="template-list"),
    path("templates/<int:pk>", api.TemplateDetailView.as_view(), name="template-detail"),
    path("templates/<int:pk>/preview", api.TemplatePreviewView.as_view(), name="template-preview"),
    path("campaigns", api.CampaignListView.as_view(), name="campaign-list"),
    path("campaigns/<int:pk>", api.CampaignDetailView.as_view(), name="campaign-detail"),
    path("campaigns/<int:pk>/send", api.CampaignSendView.as_view(), name="campaign-send"),
    path("campaigns/<int:pk>/pause", api.CampaignPauseView.as_view(), name="campaign-pause"),
    path("campaigns/<int:pk>/resume", api.CampaignResumeView.as_view(), name="campaign-resume"),
    path("campaigns/<int:pk>/cancel", api.CampaignCancelView.as_view(), name="campaign-cancel"),
    path("campaigns/<int:pk>/winner", api.CampaignWinnerView.as_view(), name="campaign-winner"),
    path("campaigns/<int:pk>/test", api.CampaignTestView.as_view(), name="campaign-test"),
    path("campaigns/<int:pk>/recipients", api.CampaignRecipientsView.as_view(), name="campaign-recipients"),
    path("campaigns/<int:pk>/progress", api.CampaignProgressView.as_view(), name="campaign-progress"),
    path("sender-domains", api.SenderDomainListView.as_view(), name="sender-domain-list"),
    path("sender-domains/<int:pk>", api.SenderDomainDetailView.as_view(), name="sender-domain-detail"),
    path("sender-domains/<int:pk>/verify", api.SenderDomainVerifyView.as_view(), name="sender-domain-verify"),
]
