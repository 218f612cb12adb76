"""QuestFoundry cost model ``openai``: OpenAI prices from genai-prices' bundled data.

The pricing itself lives in :mod:`questfoundry_pricing_openai.prices`, which imports genai-prices;
importing this package does not.
"""
