"""The grader's student-facing messages in the learner's language (catalogue: ``zh.po`` here).

``tr(msgid, lang=None, **fields)``: ``msgid`` (the English text) translated to ``lang`` (default:
``cs231n_lib.i18n.language()``) and formatted; see ``cs231n_lib.i18n.Messages``. Wrapped here:
``check``'s report, the feedback page's headings and verdicts, the judge's messages, the
solution stubs of the released notebooks and the help of the student commands ``check`` and
``lab``.
"""

from __future__ import annotations

from pathlib import Path

from cs231n_lib.i18n import Messages

MESSAGES = Messages(Path(__file__).resolve().parent)


def tr(msgid: str, /, lang: str | None = None, **fields) -> str:
    """A grader message in ``lang`` (default: the current language), formatted with
    ``fields``."""
    return MESSAGES.tr(msgid, lang, **fields)
