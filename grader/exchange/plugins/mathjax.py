"""MathJax for the HTML nbgrader writes (the formgrader's grading view, students' feedback) without
a CDN: a hub must work offline and behind strict firewalls.

nbconvert's ``mathjax()`` macro loads MathJax 2 from cdnjs, and nbgrader's templates call it
with no argument, so ``HTMLExporter.mathjax_url`` changes nothing. Here the ``<script src>`` of that
CDN becomes a small loader that asks the Jupyter server the page came from
(``/user/<name>/`` or ``/services/<course>/``) for its copy at ``aicourse/mathjax/``
(:mod:`grader.hub.spawn.servers` serves the pinned npm package ``mathjax`` from ``node_modules``,
or redirects to the CDN where it is not installed). A page opened from anywhere else (a file saved
to disk) falls back to the CDN, as before.

Used twice: the formgrader's template override (:func:`macro_template`, in the formgrader
service) and :class:`grader.exchange.plugins.feedback.ReleaseFeedback` (:func:`localise`), so
feedback generated anywhere (``grader feedback``, the formgrader's button, ``nbgrader``) reaches
students with the loader.
"""

from __future__ import annotations

# Where every Jupyter server of the hub serves MathJax, under its own prefix.
MATHJAX_ROUTE = "aicourse/mathjax/"
# The version pinned in package.json; the CDN serves the same files where node_modules has none.
MATHJAX_VERSION = "2.7.9"
MATHJAX_CDN = f"https://cdnjs.cloudflare.com/ajax/libs/mathjax/{MATHJAX_VERSION}/"
# nbconvert's default (base/mathjax.html.j2) and the tag its macro writes with it.
NBCONVERT_MATHJAX_URL = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
_NBCONVERT_TAG = '<script src="{url}"> </script>'
_MACRO_TAG = '<script src="{{url}}"> </script>'
# The configuration nbconvert's URL asks for, from the local copy.
_LOCAL_ENTRY = MATHJAX_ROUTE + "MathJax.js?config=TeX-AMS_CHTML-full,Safe"

_LOADER = """<script>
(function () {
  /* MathJax from the Jupyter server of this hub that served the page (aicourse: no CDN needed). */
  var prefix = /^(.*?\\/(?:user|services)\\/[^\\/]+\\/)/.exec(new URL(document.baseURI).pathname);
  var src = prefix ? prefix[1] + "%(entry)s" : "%(fallback)s";
  document.write('<script src="' + src + '"><\\/script>');
})();
</script>"""


def loader_script(fallback_url: str) -> str:
    """The ``<script>`` that loads MathJax from the page's own server, else from ``fallback_url``."""
    if '"' in fallback_url or "<" in fallback_url:
        raise ValueError(f"not a plain URL: {fallback_url!r}")
    return _LOADER % {"entry": _LOCAL_ENTRY, "fallback": fallback_url}


def localise(html: str) -> str:
    """``html`` (nbconvert's output) with its CDN MathJax tag replaced by the loader; unchanged if
    it has none (already localised, or written without maths support)."""
    return html.replace(_NBCONVERT_TAG.format(url=NBCONVERT_MATHJAX_URL), loader_script(NBCONVERT_MATHJAX_URL))


def macro_template(nbconvert_macro: str) -> str | None:
    """nbconvert's ``base/mathjax.html.j2`` with the loader in place of its ``<script src>``, or None
    when that file does not have the tag this module knows (another nbconvert: keep its own)."""
    if nbconvert_macro.count(_MACRO_TAG) != 1:
        return None
    # The macro's url argument (the CDN unless a template passes one) stays the fallback.
    loader = _LOADER % {"entry": _LOCAL_ENTRY, "fallback": "{{ url }}"}
    return nbconvert_macro.replace(_MACRO_TAG, loader)
