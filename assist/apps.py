from django.apps import AppConfig

from campaigns import hooks as campaign_hooks
from segments import hooks as segment_hooks

from .intent import classify


class AssistConfig(AppConfig):
    name = "assist"
    verbose_name = "AI assistance"

    def ready(self):
        from .scheduling import summaries_schedule  # noqa: PLC0415  (imports models: only once apps are ready)

        if classify not in campaign_hooks.content_classifiers:
            campaign_hooks.content_classifiers.append(classify)
        if summaries_schedule not in campaign_hooks.campaign_sent:
            campaign_hooks.campaign_sent.append(summaries_schedule)
        if "ai-segment" not in segment_hooks.sentence_endpoints:
            segment_hooks.sentence_endpoints.append("ai-segment")
