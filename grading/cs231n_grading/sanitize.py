"""Sanitising what the grader writes for a browser: nbconvert's SanitizeHTML (bleach).

Student outputs and markdown may hold ``<script>``, event handlers (``onerror=``) or
``javascript:`` links. The feedback pages (cs231n_grading.feedback) and the autograded notebooks the
formgrader renders must not run them. Everything here uses nbconvert's sanitiser with one
allowlist of tags and attributes; bleach also keeps only http(s)/mailto URLs in them.
"""

from __future__ import annotations

from nbformat import NotebookNode

from cs231n_lib.checks import RECORD_MIME

# bleach's defaults plus what rendered markdown, highlighted code and tables need
SAFE_TAGS = ["a", "abbr", "acronym", "b", "blockquote", "br", "code", "dd", "del", "div", "dl",
             "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol",
             "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
             "th", "thead", "tr", "ul"]
SAFE_ATTRIBUTES = {"*": ["class"], "a": ["href", "title"], "abbr": ["title"],
                   "acronym": ["title"], "img": ["src", "alt", "width", "height"],
                   "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"]}


def sanitizer(extra_safe: tuple[str, ...] = ()):
    """nbconvert's SanitizeHTML with SAFE_TAGS/SAFE_ATTRIBUTES: strips scripts, event handlers,
    unsafe URLs and other tags; ``extra_safe`` output kinds are kept unchanged."""
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    pre = SanitizeHTML(tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES)
    pre.safe_output_keys = set(pre.safe_output_keys) | set(extra_safe)
    return pre


def sanitize_notebook(nb: NotebookNode) -> NotebookNode:
    """``nb`` made safe to render unsanitised (as the formgrader does), in place.

    Code outputs: SanitizeHTML (JavaScript, SVG, widget and unknown kinds removed, HTML and
    markdown cleaned; the grader's record outputs kept: data, never rendered). Markdown cells:
    rendered to HTML by nbconvert and then cleaned, since markdown syntax itself makes links
    (``[x](javascript:...)``) that cleaning the source would miss; the rendered HTML shows the
    same when rendered as markdown again. Raw cells: cleaned.
    """
    from nbconvert.filters.markdown import markdown2html

    pre = sanitizer((RECORD_MIME,))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in pre.sanitize_code_outputs(cell.get("outputs", []))
                            if o.get("output_type") in ("stream", "error") or o.get("data")]
        elif cell.cell_type == "markdown":
            cell.source = pre.sanitize_html_tags(markdown2html(cell.source))
        else:
            cell.source = pre.sanitize_html_tags(cell.source)
    return nb
