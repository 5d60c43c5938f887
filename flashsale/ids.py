"""What a user id may be: the one rule the API door, the command line and the stock
scripts share.

A user id (a token's `sub`) becomes part of Redis keys and script arguments (as UTF-8)
and a `varchar(255)` column in PostgreSQL. A lone surrogate cannot be encoded as UTF-8
and a NUL byte cannot be stored in a PostgreSQL text column, so both would fail three
layers down, after stock was taken; control characters and line separators would forge
lines in logs. So an id is 1 to 255 printable characters, and not only whitespace:
letters, digits, punctuation, symbols, inner spaces and format characters (the zero-width
joiner of an emoji sequence) are all fine."""

from __future__ import annotations

import unicodedata

MAX_USER_ID = 255
"""Characters; the `orders.user_id` column is varchar(255)."""

MAX_USER_ID_BYTES = 4 * MAX_USER_ID
"""UTF-8 bytes: what 255 characters take at most, so never the tighter bound."""

# Cc: C0/C1 controls (NUL, tab, newline, DEL, U+0085); Cs: surrogates, which only a lone
# `\ud800` escape in JSON can produce; Cn: unassigned code points and the noncharacters
# (U+FFFE, U+FFFF); Zl/Zp: the line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cn", "Zl", "Zp"})


def user_id_problem(value: object) -> str | None:
    """Why `value` is not a valid user id, or None when it is one."""
    if not isinstance(value, str):
        return "a user id must be a string"
    if not value:
        return "a user id must not be empty"
    if len(value) > MAX_USER_ID:
        return f"a user id is at most {MAX_USER_ID} characters"
    # The common case, ASCII, without a lookup per character: in ASCII exactly the
    # controls (0x00-0x1f, 0x7f) are not printable.
    if not (value.isascii() and value.isprintable()):
        for char in value:
            if unicodedata.category(char) in REFUSED_CATEGORIES:
                return (
                    f"a user id must not contain U+{ord(char):04X} "
                    "(a control, surrogate, line separator or unassigned character)"
                )
    if value.isspace():
        return "a user id must not be only whitespace"
    return None


def is_user_id(value: object) -> bool:
    return user_id_problem(value) is None


def check_user_id(value: object) -> str:
    """`value` itself when it is a valid user id; ValueError saying why not otherwise."""
    problem = user_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(value, str)
    return value
