"""The book as one self-contained HTML file a reader opens: a gamebook read one section at a time.

Without JavaScript the style sheet alone shows one section (``:target``; the start when the
address names none); the script adds the place kept between visits, the path so far, Back,
Restart, keys and focus. The file loads nothing: style and script are inline, pictures are
``data:`` URIs, and its Content-Security-Policy allows exactly that style and that script (by
their hashes) and ``data:`` images, so even markup that slipped into a page could not run.
"""

from __future__ import annotations

from questfoundry.book.edition import Book
from questfoundry.book.markup import asset, environment, sha256_source


def to_html(book: Book) -> str:
    """The whole book as one HTML document."""
    style, script = asset("reader.css"), asset("reader.js")
    policy = "; ".join(
        (
            "default-src 'none'",
            "img-src data:",
            f"style-src {sha256_source(style)}",
            f"script-src {sha256_source(script)}",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    most = max((len(page.turns) for page in book.pages), default=1)
    return (
        environment()
        .get_template("book.html")
        .render(
            book=book,
            labels=book.labels,
            policy=policy,
            style=style,
            script=script,
            most_choices=max(most, 1),
        )
    )
