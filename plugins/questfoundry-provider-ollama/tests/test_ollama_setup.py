"""How the Ollama plugin offers itself to ``questfoundry init``."""

from __future__ import annotations

import pytest
from questfoundry_provider_ollama.plugin import offer_ollama, ollama_url


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("ollama.lan:8080", "http://ollama.lan:8080"),
        ("https://ollama.example", "https://ollama.example:11434"),
        ("[::1]:11500", "http://[::1]:11500"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(value: str, url: str) -> None:
    assert ollama_url({"OLLAMA_HOST": value}) == url


def test_with_no_ollama_answering_it_offers_nothing_unless_asked() -> None:
    closed = "http://127.0.0.1:9"
    assert offer_ollama({}, closed, asked=False) is None
    asked = offer_ollama({}, closed, asked=True)
    assert asked is not None and "base_url: http://127.0.0.1:9" in asked.text
