"""Text from the network, made inert for every place that shows it to the owner.

Host names (DHCP, mDNS), vendors, the data sent to a decoy, an agent's error message: anyone
on the LAN chooses them, and they reach the owner when an alarm has just put them on edge.
Every rendering path calls ``inert`` on such a value: the persistent notification (Markdown
with some HTML), the phone notification (plain text on iOS, some HTML on Android), the
logbook, the repair issue and the discovery dialog. One form serves them all, because the
same message often goes to several: it reads the same everywhere and cannot become a link,
an image, a tag, an entity or formatting in any of them.

* Control, format, bidirectional and zero-width characters become a visible U+FFFD (so a
  reversed or hidden part of a name shows that it is there); line breaks and tabs a space.
* Markup characters become their full-width forms, which no renderer treats as markup and
  every font has (Japanese text uses them anyway): ``< > & [ ] ` * ~ \\ @``. So do the colon
  of ``://`` and a dot between a letter or digit and a letter (``www.example.com``,
  ``evil.com``): no URL, domain or e-mail address is linked. Addresses (``192.168.1.23``)
  and names such as ``Co.,Ltd.`` keep their dots.
* The length is bounded, with an ellipsis.

A ``_`` between two letters or digits stays (``ESP_3C61A5``: Markdown ignores it there); any
other becomes full-width, so no emphasis either. Entity attributes
and bus events keep the raw values: they are data there, which the frontend shows as text.
Log lines use ``printable``: bounded, one line, nothing hidden.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

NAME: Final = 64  # host name, vendor, entity name: a DHCP label is at most 63
SAMPLE: Final = 80  # data sent to a decoy: enough to recognise SMB, HTTP or RTSP
DETAIL: Final = 160  # an agent's or a router's error message

_ELLIPSIS: Final = "…"
_REPLACEMENT: Final = "\ufffd"
_MARKUP: Final = str.maketrans(
    {
        "<": "\uff1c",
        ">": "\uff1e",
        "&": "\uff06",
        "[": "\uff3b",
        "]": "\uff3d",
        "`": "\uff40",
        "*": "\uff0a",
        "~": "\uff5e",
        "\\": "\uff3c",
        "@": "\uff20",
    }
)
_SCHEME: Final = re.compile(r":(?=//)")
_DOMAIN_DOT: Final = re.compile(r"(?<=\w)\.(?=[^\W\d_])")
_EMPHASIS: Final = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_SPACES: Final = re.compile(r" {2,}")


def printable(value: object, limit: int = DETAIL) -> str:
    """``value`` as one line of visible text, at most ``limit`` characters ("" for None)."""
    if value is None:
        return ""
    text = "".join(_visible(char) for char in str(value))
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def inert(value: object, limit: int = NAME) -> str:
    """``value`` as text that no renderer turns into markup (see the module docstring)."""
    text = printable(value, limit).translate(_MARKUP)
    text = _EMPHASIS.sub("\uff3f", _SCHEME.sub("\uff1a", text))
    return _DOMAIN_DOT.sub("\uff0e", text)


def _visible(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    category = unicodedata.category(char)
    if char.isspace() or category in ("Zl", "Zp"):
        return " "
    if category[0] == "C" and category not in ("Co", "Cn"):
        return _REPLACEMENT
    return char
