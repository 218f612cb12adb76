"""QuestFoundry provider ``openai``: chat completions and image generation on the official SDK.

Works with OpenAI and with any OpenAI-compatible endpoint (set ``base_url``). The SDK is imported by
the factory (:mod:`questfoundry_provider_openai.provider`), never by importing this package.
"""
