"""Text the database can store: PostgreSQL refuses a NUL character in text, and UTF-8 has no
lone surrogate. Such input is the client's error (400, naming where it was), never a 500."""

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why a text cannot be stored, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone surrogate"


def first_unstorable(data, path: str = "") -> tuple[str, str] | None:
    """(where, why) of the first unstorable text in decoded JSON, keys included, walking it
    without recursion; None when it is all storable."""
    stack = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            why = unstorable(value)
            if why:
                return where or "body", why
        elif isinstance(value, dict):
            for key, item in value.items():
                why = unstorable(key) if isinstance(key, str) else None
                if why:
                    return f"{where}.{key!r}" if where else repr(key), f"a key {why}"
                stack.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None
