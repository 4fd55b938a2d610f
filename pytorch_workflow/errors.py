"""User-facing errors: one line on stderr, a non-zero exit, never a traceback."""

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., None])


class UserError(Exception):
    """A mistake in params, data or model files that the user can fix; the message names it."""


def one_line(text: str) -> str:
    """The text with every unprintable character escaped: names from a user's file may hold
    line breaks or control characters, and an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type's name if it has none), shortened:
    what a `UserError` quotes of a library's error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def exit_on_user_error(main: F) -> F:
    """Run `main`; turn a `UserError` into a one-line message and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {one_line(str(error))}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
