"""Messages in the learner's language: English (the msgids themselves) or Chinese.

Every student-facing message is written in English in the code, wrapped in ``tr``::

    tr("{name}: wrong shape: expected {expected}, got {actual}", name=..., expected=..., actual=...)

``tr`` looks the English text up in a gettext catalogue (a ``.po`` file read with polib) and
formats the translation with the fields; a message without a translation, or with a fuzzy one,
is shown in English. The library's catalogue is ``cs231n_lib/locale/zh.po``; the grading
package has its own (``Messages`` below, one per catalogue).

The language is ``set_language(lang)``, else ``$CS231N_LANG``, else English. The Chinese
notebooks start with ``from cs231n_lib.i18n import set_language; set_language("zh")``, so test
messages come out in Chinese in that kernel (and plots get a Chinese font where one is
installed, see ``cs231n_lib.vis_utils.cjk_font``).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "zh")
ENV_VAR = "CS231N_LANG"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: str | None = None  # set_language's choice; None: $CS231N_LANG, else "en"
# using_language's choice, per thread / asyncio task (a grader thread grading a Chinese
# notebook does not change the language of another grading an English one); None: _current
_override: ContextVar[str | None] = ContextVar("cs231n_language", default=None)


def check_language(lang: str) -> str:
    """``lang`` if it is a known language code, else ValueError naming the known ones."""
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r} is not one of {LANGUAGES}")
    return lang


def set_language(lang: str) -> None:
    """Make ``lang`` ("en" or "zh") the language of messages in this process; "zh" also lets
    matplotlib draw Chinese text when a CJK font is installed (silently nothing when not)."""
    global _current
    _current = check_language(lang)
    if lang == "zh":
        from cs231n_lib.vis_utils import cjk_font

        cjk_font()


def language() -> str:
    """The current language: using_language's, else set_language's, else ``$CS231N_LANG``
    (when valid), else "en"."""
    if _override.get() is not None:
        return _override.get()
    if _current is not None:
        return _current
    env = os.environ.get(ENV_VAR, "").strip().lower()
    env = env.split("_")[0].split("-")[0]  # zh_CN, zh-Hans -> zh
    return env if env in LANGUAGES else "en"


@contextmanager
def using_language(lang: str | None):
    """Within the block, messages are in ``lang`` (None: unchanged) in this thread (or asyncio
    task); restored afterwards, as is a ``set_language`` made inside the block."""
    global _current
    saved = _current
    token = _override.set(check_language(lang) if lang is not None else _override.get())
    try:
        yield
    finally:
        _override.reset(token)
        _current = saved


@cache
def load_catalogue(path: str) -> dict[str, str]:
    """{English msgid: translation} of a .po file: translated, non-fuzzy, non-obsolete entries
    only ({} when the file does not exist)."""
    if not Path(path).is_file():
        return {}
    import polib

    return {e.msgid: e.msgstr for e in polib.pofile(path, wrapwidth=0)
            if e.msgstr and not e.fuzzy and not e.obsolete}


class Messages:
    """The translations of one package: ``<locale_dir>/<lang>.po`` per language."""

    def __init__(self, locale_dir: Path):
        self.locale_dir = Path(locale_dir)

    def catalogue(self, lang: str) -> dict[str, str]:
        """{msgid: translation} for ``lang`` (English: empty, the msgids are the text)."""
        if check_language(lang) == "en":
            return {}
        return load_catalogue(str(self.locale_dir / f"{lang}.po"))

    def tr(self, msgid: str, /, lang: str | None = None, **fields) -> str:
        """``msgid`` translated to ``lang`` (default: ``language()``), formatted with
        ``fields`` (``str.format``); English when there is no translation."""
        text = self.catalogue(lang or language()).get(msgid, msgid)
        return text.format(**fields)

    def later(self, msgid: str, /, **fields) -> Text:
        """``msgid`` with ``fields`` as a ``Text``: English now, any language when shown."""
        return Text(self, msgid, fields)


class Text(str):
    """A message made now and shown later, maybe in another language.

    As a ``str`` it is the English text (``msgid.format(**fields)``), so code and tests that
    compare or search messages see English; ``shown(lang)`` is the text in ``lang`` (default:
    the current language), fields that are ``Text`` themselves shown in the same language.
    Source code marks such messages with ``N_("msgid", field=...)`` (gettext's marker for a
    message translated later), which the catalogue test collects like ``tr("...")``.
    """

    def __new__(cls, messages: Messages, msgid: str, fields: dict):
        obj = super().__new__(cls, msgid.format(**fields))
        obj.messages, obj.msgid, obj.fields = messages, msgid, dict(fields)
        return obj

    def __reduce__(self):
        return Text, (self.messages, self.msgid, self.fields)

    def shown(self, lang: str | None = None) -> str:
        """The message in ``lang`` (default: the current language)."""
        lang = lang or language()
        fields = {k: v.shown(lang) if isinstance(v, Text) else v for k, v in self.fields.items()}
        return self.messages.tr(self.msgid, lang, **fields)


_LIBRARY = Messages(LOCALE_DIR)


def tr(msgid: str, /, lang: str | None = None, **fields) -> str:
    """A message of the library (``cs231n_lib/locale``) in the current language (see
    ``Messages.tr``)."""
    return _LIBRARY.tr(msgid, lang, **fields)


STUB_MSGID = ("not implemented yet: write your code in {function} (notebook {notebook}, "
              "section {section}); the student edition of the library does not include it")


def stub_message(function: str, notebook: str, section: str, lang: str | None = None) -> str:
    """The message of an exercise's stub in the student edition of the library (raised as
    ``NotImplementedError``; see ``cs231n_grading.student_edition``)."""
    return tr(STUB_MSGID, lang, function=function, notebook=notebook, section=section)


def stub_text(english: str) -> str:
    """A stub's English message (as ``stub_message(..., lang="en")`` made it) in the current
    language: the student edition keeps the English text in its source and raises
    ``NotImplementedError(stub_text("not implemented yet: ..."))``. Any other text is returned
    unchanged."""
    fields = re.fullmatch(_pattern(STUB_MSGID), english, flags=re.DOTALL)
    return stub_message(**fields.groupdict()) if fields else english


@cache
def _pattern(msgid: str) -> str:
    """A regular expression matching ``msgid`` formatted with any field values."""
    parts = re.split(r"\{(\w+)\}", msgid)
    return "".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>.+?)"
                   for k, p in enumerate(parts))
