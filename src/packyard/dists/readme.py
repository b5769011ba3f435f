"""README rendering for project pages, exactly as Warehouse does it (STANDARDS §5).

Warehouse (`warehouse/utils/readme.py`) picks a `readme_renderer` module by the
Description-Content-Type's media type:

    none, "", text/x-rst -> rst       (docutils; a warning fails the render)
    text/plain           -> txt, wrapped in <pre>
    text/markdown        -> markdown  (always GFM, via comrak)
    anything else        -> txt

and shows plain text when the chosen renderer fails (here inside `<pre>`, so
that the text keeps its layout). Every renderer's output
goes through `readme_renderer.clean` (nh3 with an allow-list of tags,
attributes and the URL schemes http, https and mailto), so the returned HTML
is safe to insert into a page as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt

Renderer = Callable[[str], str | None]
# The largest README uploads accept by default (`upload.max_description_bytes`)
# and pages render: rendering takes time in proportion to the text.
MAX_README_BYTES = 4 * 1024 * 1024


def _markdown(raw: str) -> str | None:
    # Warehouse passes no variant: GitHub-flavoured Markdown whatever the header says.
    return readme_renderer.markdown.render(raw, variant="GFM")


def _plain(raw: str) -> str | None:
    rendered = readme_renderer.txt.render(raw)
    return None if rendered is None else f"<pre>{rendered}</pre>"


_RENDERERS: dict[str, Renderer] = {
    "": readme_renderer.rst.render,
    "text/x-rst": readme_renderer.rst.render,
    "text/plain": _plain,
    "text/markdown": _markdown,
}


def media_type(content_type: str | None) -> str:
    """The lower-cased media type of a Description-Content-Type, without parameters."""
    if not content_type:
        return ""
    message = Message()
    message["Content-Type"] = content_type
    # Message falls back to text/plain for an unparseable header; the raw
    # value is kept so that such a header picks the txt renderer as "unknown".
    parsed = message.get_content_type()
    raw = content_type.partition(";")[0].strip().lower()
    return parsed if parsed == raw else raw


def render_readme(description: str | None, content_type: str | None = None) -> str:
    """The README (the Description field) as sanitised HTML.

    Args:
        description: the README text; None or empty gives "".
        content_type: the Description-Content-Type header, parameters included.

    Returns:
        HTML cleaned by readme_renderer's nh3 allow-list. When the renderer for
        the content type fails (broken reStructuredText, say), the README is
        shown as escaped plain text inside `<pre>`. Never raises for bad input.
    """
    if not description:
        return ""
    renderer = _RENDERERS.get(media_type(content_type), readme_renderer.txt.render)
    rendered = renderer(description)
    if rendered is None:
        rendered = _plain(description)
    return accessible(rendered or "")


# comrak's heading permalinks are empty links, and its code blocks carry the code's
# language in `lang`, which is for human languages: screen readers announce the
# first as a nameless link and read the second in a made-up language (axe-core's
# link-name and valid-lang). The HTML is nh3's output, so the shapes are exact.
_EMPTY_PERMALINK = re.compile(r'<a href="#(user-content-[^"]*)" rel="nofollow"></a>')
_CODE_LANGUAGE = re.compile(r'<pre lang="([^"]*)">')


def accessible(html: str) -> str:
    """The rendered README with its permalinks named and code languages moved to
    `data-lang`."""
    html = _EMPTY_PERMALINK.sub(
        # The mark is drawn by the stylesheet: the heading's text stays its own.
        r'<a href="#\1" rel="nofollow" class="permalink" aria-label="Link to this section"></a>',
        html,
    )
    return _CODE_LANGUAGE.sub(r'<pre data-lang="\1">', html)
