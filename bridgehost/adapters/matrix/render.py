"""Formatting between Matrix HTML and Scalar text or markdown (pure, no I/O).

Matrix -> Scalar: `formatted_body` HTML becomes plain text, or markdown when
the link asks for it; the reply fallback (`<mx-reply>`, leading `> ` lines)
is dropped because the reply is carried by `reply_to`.

Scalar -> Matrix: markdown is rendered with raw HTML disabled, then cleaned
with nh3 to a small tag allowlist, so a body such as `<script>` or
`<img src=x onerror=...>` reaches Matrix as visible text, never as markup.
Plain text is escaped, never interpreted.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "br",
        "code",
        "del",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
_MD.enable("strikethrough").disable("image")
_BLOCKS = frozenset(
    {"p", "div", "pre", "blockquote", "ul", "ol", "table", "tr", "hr"}
    | {f"h{n}" for n in range(1, 7)}
)
_MD_INLINE = {
    "strong": "**",
    "b": "**",
    "em": "*",
    "i": "*",
    "del": "~~",
    "s": "~~",
    "strike": "~~",
}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")
_SPACES = re.compile(r"[ \t\r\n\f]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def sanitize_html(fragment: str) -> str:
    """Keep only the allowlisted tags and attributes, and safe link schemes."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )


def markdown_to_html(text: str) -> str:
    """Scalar markdown -> sanitised HTML for `formatted_body`."""
    rendered = sanitize_html(_MD.render(text)).strip()
    if rendered.count("<p>") == 1 and rendered.startswith("<p>") and rendered.endswith("</p>"):
        rendered = rendered[3:-4]
    return rendered


def text_to_html(text: str) -> str:
    """Plain text -> HTML that shows exactly that text."""
    return html.escape(text, quote=False).replace("\n", "<br>")


class _Converter(HTMLParser):
    """Walks Matrix HTML and writes plain text or markdown."""

    def __init__(self, markdown: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.md = markdown
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.code = 0
        self.lists: list[list[int]] = []
        self.links: list[tuple[str, int]] = []
        self.quotes: list[int] = []

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [line.rstrip() for line in joined.split("\n")]
        return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip("\n")

    def _tail(self) -> str:
        for piece in reversed(self.out):
            if piece:
                return piece
        return ""

    def _break(self, blank: bool = False) -> None:
        if not self.out or not "".join(self.out).strip():
            return
        joined = "".join(self.out)
        want = "\n\n" if blank else "\n"
        missing = len(want) - (len(joined) - len(joined.rstrip("\n")))
        if missing > 0:
            self.out.append("\n" * missing)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self.skip += 1
        if self.skip:
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self._break()
            depth = max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                bullet = f"{self.lists[-1][0]}. "
            else:
                bullet = "- "
            self.out.append("  " * depth + bullet)
        elif tag in ("ul", "ol"):
            self._break(blank=self.md and not self.lists)
            start = dict(attrs).get("start")
            first = int(start) - 1 if tag == "ol" and start and start.isdigit() else 0
            self.lists.append([first if tag == "ol" else -1])
        elif tag == "blockquote":
            self._break(blank=self.md)
            self.quotes.append(len(self.out))
        elif tag == "pre":
            self._break(blank=self.md)
            self.pre += 1
            if self.md:
                self.out.append("```\n")
        elif tag in _BLOCKS:
            self._break(blank=self.md)
            if self.md and tag[0] == "h" and tag[1:].isdigit():
                self.out.append("#" * int(tag[1:]) + " ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag == "code" and not self.pre:
            self.code += 1
            if self.md:
                self.out.append("`")
        elif tag == "img":
            alt = dict(attrs).get("alt") or ""
            self.out.append(alt)
        elif self.md and tag in _MD_INLINE:
            self.out.append(_MD_INLINE[tag])

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self.skip = max(self.skip - 1, 0)
            return
        if self.skip:
            return
        if tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._break(blank=self.md and not self.lists)
        elif tag == "blockquote":
            start = self.quotes.pop() if self.quotes else 0
            inner = "".join(self.out[start:]).strip("\n")
            del self.out[start:]
            self.out.append("\n".join("> " + line if line else ">" for line in inner.split("\n")))
            self._break(blank=self.md)
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
            if self.md:
                self._break()
                self.out.append("```")
            self._break(blank=self.md)
        elif tag in _BLOCKS or tag == "li":
            self._break(blank=self.md and tag != "li")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:])
            del self.out[start:]
            self.out.append(self._link(label, href))
        elif tag == "code" and not self.pre:
            self.code = max(self.code - 1, 0)
            if self.md:
                self.out.append("`")
        elif self.md and tag in _MD_INLINE:
            self.out.append(_MD_INLINE[tag])

    def _link(self, label: str, href: str) -> str:
        if not href or href.startswith("https://matrix.to/#/"):
            return label
        if self.md:
            bare = label.strip().replace("\\", "")
            return f"<{href}>" if not bare or bare == href else f"[{label}]({href})"
        plain = label.strip()
        if not plain or href in (plain, f"mailto:{plain}"):
            return plain or href
        return f"{label} ({href})"

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            self.out.append(data)
            return
        data = _SPACES.sub(" ", data)
        tail = self._tail()
        if not tail or tail.endswith("\n"):
            data = data.lstrip(" ")
        if self.md and not self.code:
            data = _MD_SPECIAL.sub(r"\\\1", data)
        self.out.append(data)


def html_to_text(fragment: str) -> str:
    """Matrix HTML -> plain text: styling dropped, links kept as `label (url)`."""
    conv = _Converter(markdown=False)
    conv.feed(fragment)
    conv.close()
    return conv.text()


def html_to_markdown(fragment: str) -> str:
    """Matrix HTML -> CommonMark that renders to the same thing."""
    conv = _Converter(markdown=True)
    conv.feed(fragment)
    conv.close()
    return conv.text()


def strip_reply_fallback(body: str) -> str:
    """Drop the `> <@user> quoted` lines a Matrix reply may start with."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def escape_markdown(text: str) -> str:
    """Plain text that must stay literal inside markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)
