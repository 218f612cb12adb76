"""The Jinja2 environment the HTML and XHTML files are made in, escaping every value by default.

Autoescaping is on for every template, so text from a model or a state file reaches a page only
as text; the only markup that is not escaped is the package's own (its style sheet and script,
read from files beside the templates).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("questfoundry.book", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def asset(name: str) -> Markup:
    """The package file ``templates/<name>`` (a style sheet or script), trusted as markup."""
    text = (files("questfoundry.book") / "templates" / name).read_text(encoding="utf-8")
    return Markup(text)  # the package's own file, not data


def sha256_source(text: str) -> str:
    """A Content-Security-Policy source allowing exactly the inline ``text``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
