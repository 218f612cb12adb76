"""QuestFoundry cost model ``openai``: OpenAI prices from genai-prices' bundled data.

The pricing itself is the kit's :class:`~questfoundry.kit.GenaiPrices`, which imports genai-prices
when it is built; importing this package does not.
"""
