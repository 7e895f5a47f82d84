"""How visitors' names and glyphs are shown: literal text in markdown, names cut to fit an axis, thumbnails.

Plain functions of their input, with no Streamlit call, so the tests check them without running a page.
"""

from __future__ import annotations

import re

import numpy as np

_MARKDOWN_SPECIAL = {c: "\\" + c for c in r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""}
_MARKDOWN_SPECIAL.update({"\n": " ", "\r": " "})
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?:https?:|www\.|@)")


def plain(text: object) -> str:
    """``text`` as literal text inside Streamlit markdown (alerts, captions, st.markdown).

    Class and file names come from visitors and from shared task files: rendered as markdown, a name
    like ``![t](http://host/x.png)`` would make the browser fetch from that host, and ``:red[..]`` or
    ``$x$`` would restyle the page. A backslash before every ASCII punctuation mark is CommonMark's
    own way to say "this character, literally"; newlines become spaces so a name stays one line.
    GitHub-flavoured markdown also links bare addresses (``http://``, ``www.``, ``a@b.c``) after the
    escapes are read, so an invisible word joiner breaks those patterns without changing what is seen.
    """
    text = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + WORD_JOINER + m.group(0)[-1], str(text))
    return text.translate(str.maketrans(_MARKDOWN_SPECIAL))


def short_names(names: list[str], width: int = 18) -> list[str]:
    """Class names cut to fit a chart's axis, kept distinct.

    A long name keeps its start, "…" and its last words: the end is what tells similar names apart
    ("Old Church Slavonic (Cyrillic) 37" and "... 5"), so it is not the part cut off.
    """
    out = []
    for i, n in enumerate(names):
        s = n
        if len(n) > width:
            # The longest tail that starts at a word break and fits half the width; else the last characters.
            breaks = (n[m.start() :] for m in re.finditer(r"[\s_]", n) if len(n) - m.start() <= width // 2)
            tail = next(breaks, "") or n[-(width // 3) :]
            s = n[: width - 1 - len(tail)].rstrip() + "…" + tail
        out.append(s if s not in out else f"{s} ({i + 1})")
    return out


def thumbnail(arr: np.ndarray) -> np.ndarray:
    """Dark ink on white, the way people draw; the model sees ink = 1."""
    return 255 - arr
