"""Which pictures a book may hold: PNG, JPEG, WebP and GIF, known by their bytes.

An image provider (or a state file) may hand back anything: an SVG carrying a script, an HTML
page, a truncated file. What an image is comes from its first bytes, never from a media type
someone wrote beside it, and anything that is not one of the four raster formats is refused:
those are the formats every browser and e-reader shows and none of them can hold code.
"""

from __future__ import annotations

#: media type → the file extension the book's files use for it
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def image_type(data: bytes) -> str | None:
    """The media type ``data`` is by its signature and first chunk, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in _WEBP_CHUNKS:
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 13:
        return "image/gif"
    return None


_WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")


def image_problem(data: bytes) -> str | None:
    """Why ``data`` is refused, in one line (what it is not, how it begins); None for an image."""
    if image_type(data) is not None:
        return None
    begins = data[:24].decode("ascii", "backslashreplace")
    shown = "".join(c if c.isprintable() else "?" for c in begins)
    return f"not a PNG, JPEG, WebP or GIF image ({len(data)} bytes beginning {shown!r})"
