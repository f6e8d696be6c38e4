/**
 * Message bodies to DOM, safely: `text/markdown` through markdown-it (raw
 * HTML off, images off so that nothing is fetched from elsewhere) and then
 * DOMPurify; plain text as text nodes with its links made clickable. Every
 * link opens in a new tab without a referrer.
 */
import DOMPurify from "dompurify";
import { LinkifyIt } from "linkify-it";
import MarkdownIt from "markdown-it";

const md = new MarkdownIt({ html: false, linkify: true, breaks: true });
md.disable(["image"]);

/** The same parser without linkify: used to tell formatted text from plain. */
const bare = new MarkdownIt({ html: false, linkify: false, breaks: true });
bare.disable(["image"]);

const linkify = new LinkifyIt();

const ALLOWED_TAGS = [
  "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
  "hr", "i", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead",
  "tr", "ul",
];
const SAFE_URL = /^(?:https?:|mailto:)/i;

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    if (!SAFE_URL.test(href)) {
      node.removeAttribute("href");
    } else {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
});

/** Whether markdown would format this text (so it is worth sending as text/markdown). */
export function looksLikeMarkdown(text: string): boolean {
  const tokens = bare.parse(text, {});
  if (tokens.length === 0) return false;
  if (tokens.length !== 3 || tokens[0].type !== "paragraph_open" || tokens[1].type !== "inline") {
    return true;
  }
  const plain = new Set(["text", "softbreak", "hardbreak"]);
  return (tokens[1].children ?? []).some((t) => !plain.has(t.type));
}

function link(href: string, text: string): HTMLAnchorElement {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

/** Plain text with its URLs as links; never parsed as HTML. */
export function plainFragment(text: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of linkify.match(text) ?? []) {
    if (!SAFE_URL.test(m.url)) continue;
    if (m.index > last) frag.append(text.slice(last, m.index));
    frag.append(link(m.url, m.text));
    last = m.lastIndex;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

/** Markdown rendered and sanitised. */
export function markdownFragment(text: string): DocumentFragment {
  return purify.sanitize(md.render(text), {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "colspan", "rowspan"],
    RETURN_DOM_FRAGMENT: true,
  });
}

export function bodyFragment(body: string, ctype: string | undefined): DocumentFragment {
  return ctype === "text/markdown" ? markdownFragment(body) : plainFragment(body);
}
