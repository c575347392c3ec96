"""AI assistance (PRODUCT.md "AI assistance"): segments from a sentence, campaign intent and
summaries, subject line ideas. Offline answers always; an OpenAI-compatible provider when configured.
"""
