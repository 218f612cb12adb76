"""public_url: the address an error names, never a credential the URL carried."""

from __future__ import annotations

import pytest

from questfoundry.kit import public_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1"),
        (
            "https://user:hunter2-secret@proxy.example:8443/v1?key=AIza-0123",
            "https://proxy.example:8443/v1",
        ),
        ("http://[::1]:11434", "http://[::1]:11434"),
        ("http://localhost:99999/v1", "http://localhost/v1"),
    ],
)
def test_an_address_keeps_scheme_host_port_and_path_only(url: str, shown: str) -> None:
    assert public_url(url) == shown
