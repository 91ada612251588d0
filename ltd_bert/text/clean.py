"""Text cleaning and what counts as content: the one `clean_text` every step sees,
`is_content_char` / `is_content_word` (punctuation and separators are not content)."""

from __future__ import annotations

import re
import unicodedata

_SPACE_RUN = re.compile(r"\s+")


_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def clean_text(text: str) -> str:
    """NFKC, drop control/format characters, fold white space to single spaces, strip."""
    text = unicodedata.normalize("NFKC", text)
    if text.isprintable():  # no C* characters, and no white space but " ": the fast path
        return _SPACE_RUN.sub(" ", text).strip() if "  " in text else text.strip()
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _SPACE_RUN.sub(" ", text).strip()


def is_content_char(ch: str) -> bool:
    """False for punctuation, white space and separators: they get weight 0."""
    if ch.isspace():
        return False
    return unicodedata.category(ch)[0] not in "PZ"


def is_content_word(word: str) -> bool:
    return any(is_content_char(ch) for ch in word)
