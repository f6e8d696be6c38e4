"""Matrix HTML <-> Scalar text/markdown (pure functions)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from bridgehost.adapters.matrix.render import (
    html_to_markdown,
    html_to_text,
    markdown_to_html,
    sanitize_html,
    strip_reply_fallback,
    text_to_html,
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def markup_of(fragment: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag (with attributes) an HTML parser finds in `fragment`."""
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser.tags


REPLY_FALLBACK = (
    '<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> '
    '<a href="https://matrix.to/#/@a:x">@a:x</a><br>original</blockquote></mx-reply>'
)


@pytest.mark.parametrize(
    ("html", "text", "markdown"),
    [
        ("<b>bold</b> and <i>it</i>", "bold and it", "**bold** and *it*"),
        ("<code>x*y</code> 5*3", "x*y 5*3", "`x*y` 5\\*3"),
        (REPLY_FALLBACK + "the answer", "the answer", "the answer"),
        ("<p>one</p><p>two</p>", "one\ntwo", "one\n\ntwo"),
        ("a<br>b<br/>c", "a\nb\nc", "a\nb\nc"),
        ("<ul><li>x</li><li>y</li></ul>", "- x\n- y", "- x\n- y"),
        ('<ol start="3"><li>x</li><li>y</li></ol>', "3. x\n4. y", "3. x\n4. y"),
        ("<blockquote>q</blockquote>r", "> q\nr", "> q\n\nr"),
        (
            'see <a href="https://e.org/">site</a>',
            "see site (https://e.org/)",
            "see [site](https://e.org/)",
        ),
        ('<a href="https://e.org/">https://e.org/</a>', "https://e.org/", "<https://e.org/>"),
        ('<a href="https://matrix.to/#/@bob:x">Bob</a>: hi', "Bob: hi", "Bob: hi"),
        ("<pre><code>a  b\n  c\n</code></pre>", "a  b\n  c", "```\na  b\n  c\n```"),
        ("<h2>Title</h2>body", "Title\nbody", "## Title\n\nbody"),
        ("a &lt;script&gt; &amp; b", "a <script> & b", "a \\<script\\> & b"),
        ("<del>gone</del>", "gone", "~~gone~~"),
        ('<font color="red">red</font> <span data-mx-spoiler="">s</span>', "red s", "red s"),
        ('<img src="mxc://x/y" alt=":smile:">', ":smile:", ":smile:"),
        ("  lots\n of   space  ", "lots of space", "lots of space"),
    ],
)
def test_html_to_text_and_markdown(html: str, text: str, markdown: str) -> None:
    assert html_to_text(html) == text
    assert html_to_markdown(html) == markdown


def test_markdown_to_html_renders_a_small_allowlist() -> None:
    assert markdown_to_html("**hi** _there_ `code`") == (
        "<strong>hi</strong> <em>there</em> <code>code</code>"
    )
    assert markdown_to_html("[x](https://e.org)") == (
        '<a href="https://e.org" rel="noopener noreferrer">x</a>'
    )
    assert markdown_to_html("a\nb") == "a<br>\nb"
    assert "<ul>" in markdown_to_html("- a\n- b")


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil></iframe>",
        '<b onclick="x()">b</b>',
        "<style>*{}</style>",
    ],
)
def test_raw_html_in_markdown_stays_visible_text(source: str) -> None:
    out = markdown_to_html(source)
    assert markup_of(out) == []
    assert html_to_text(out) == source


def test_javascript_links_in_markdown_are_not_links() -> None:
    out = markdown_to_html("[x](javascript:alert(1))")
    assert "<a" not in out


def test_sanitize_html_drops_what_is_not_allowed() -> None:
    dirty = '<b onclick="x">b</b><script>bad()</script><a href="javascript:x">l</a><i>i</i>'
    clean = sanitize_html(dirty)
    assert "onclick" not in clean and "<script" not in clean and "javascript" not in clean
    assert "<b>b</b>" in clean and "<i>i</i>" in clean


def test_text_to_html_escapes_everything() -> None:
    assert text_to_html("<b>x</b> & y\nz") == "&lt;b&gt;x&lt;/b&gt; &amp; y<br>z"


def test_strip_reply_fallback() -> None:
    assert strip_reply_fallback("> <@a:x> original\n> more\n\nthe answer") == "the answer"
    assert strip_reply_fallback("no fallback") == "no fallback"
    assert strip_reply_fallback(">not a quote") == ">not a quote"
