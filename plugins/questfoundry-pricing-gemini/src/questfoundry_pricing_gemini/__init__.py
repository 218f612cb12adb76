"""QuestFoundry cost model ``gemini``: Gemini prices from genai-prices' bundled data.

The pricing itself lives in :mod:`questfoundry_pricing_gemini.prices`, which imports genai-prices;
importing this package does not.
"""
