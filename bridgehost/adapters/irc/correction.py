"""Edits as IRC people write them: `s/old/new/` (pure).

Out: an edited message is shown on IRC as the smallest `s/old/new/` that
turns the old text into the new one, when that is clearly shorter than the
new text; otherwise the caller shows `* new text`. The words around the
change are kept whole, and the `old` part always names the first place it
occurs, so a reader applying it by eye (or a bot) gets the right result.

In: a line that is exactly `s/old/new/` (flags `g`, `i`) right after a
nick's own line is that nick correcting it; `apply_sed` gives the corrected
text, replacing literally (no regular expressions from strangers).
"""

from __future__ import annotations

import re

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
_DELIMITERS = "/|#,:!"
_SED = re.compile(r"s/((?:[^\\/]|\\.)+)/((?:[^\\/]|\\.)*)(?:/([gi]*))?")
_UNESCAPE = re.compile(r"\\(.)")


def _mids(old: list[str], new: list[str]) -> tuple[int, int]:
    """(common prefix, common suffix) lengths in tokens, not overlapping."""
    p = 0
    while p < len(old) and p < len(new) and old[p] == new[p]:
        p += 1
    q = 0
    while q < len(old) - p and q < len(new) - p and old[-1 - q] == new[-1 - q]:
        q += 1
    return p, q


def correction(old: str, new: str) -> str | None:
    """`s/a/b/` turning `old` into `new` when it is short; None when `* new` reads better."""
    if old == new or "\n" in old or "\n" in new:
        return None
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    p, q = _mids(a, b)
    start, old_end, new_end = p, len(a) - q, len(b) - q

    def widen(left: bool = True) -> bool:
        """One more word of context: to the left when there is one, else to the right."""
        nonlocal start, old_end, new_end
        if left and start > 0:
            start -= 1
            while start > 0 and a[start].isspace():
                start -= 1
            return True
        if old_end < len(a):
            old_end, new_end = old_end + 1, new_end + 1
            while old_end < len(a) and a[old_end - 1].isspace():
                old_end, new_end = old_end + 1, new_end + 1
            return True
        return start > 0 and widen()

    while True:
        if start == old_end or a[start].isspace():
            grown = widen()
        elif a[old_end - 1].isspace():
            grown = widen(left=False)
        elif old.find("".join(a[start:old_end])) != len("".join(a[:start])):
            grown = widen()
        else:
            break
        if not grown:
            return None
    part, replacement = "".join(a[start:old_end]), "".join(b[start:new_end])
    delimiter = next((d for d in _DELIMITERS if d not in part + replacement), None)
    if delimiter is None:
        return None
    text = f"s{delimiter}{part}{delimiter}{replacement}{delimiter}"
    return text if len(text) * 2 <= len(new) + 10 else None


def parse_sed(line: str) -> tuple[str, str, str] | None:
    """(old, new, flags) of a line that is exactly `s/old/new/[flags]`, else None."""
    m = _SED.fullmatch(line.strip())
    if m is None:
        return None
    old, new, flags = (_UNESCAPE.sub(r"\1", m.group(i) or "") for i in (1, 2, 3))
    return old, new, flags


def apply_sed(text: str, sed: tuple[str, str, str]) -> str | None:
    """`text` with the substitution applied, or None when `old` is not in it."""
    old, new, flags = sed
    pattern = re.compile(re.escape(old), re.IGNORECASE if "i" in flags else 0)
    result, count = pattern.subn(lambda _m: new, text, count=0 if "g" in flags else 1)
    return result if count else None
