"""JSON from the network, decoded within bounds.

``json.loads`` recurses once per level of nesting: a payload of a few kilobytes of ``[``
raises ``RecursionError``, which is no ``ValueError`` and escapes the usual "not JSON" path
(a logged traceback at best). :func:`loads` measures the nesting first, in one linear pass
that does not recurse, and refuses anything deeper than the caller allows with a
:class:`TooDeep` (a ``ValueError``), before ``json`` sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (escapes included), and the brackets left once the strings are taken out.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class TooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed."""


def nesting(raw: bytes, limit: int) -> int:
    """How deep ``raw`` nests arrays and objects (brackets inside strings do not count);
    stops counting at ``limit + 1``."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if match.group() in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def loads(raw: bytes | str, *, max_depth: int) -> Any:
    """``json.loads(raw)`` for a document nested at most ``max_depth`` deep; ``TooDeep``
    beyond, ``ValueError`` (or ``UnicodeDecodeError``) for anything that is not JSON."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting(data, max_depth) > max_depth:
        raise TooDeep(f"nested deeper than {max_depth} levels")
    return json.loads(data)
