"""User-facing errors: one line on stderr, a non-zero exit, never a traceback."""

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., None])


class UserError(Exception):
    """A mistake in params, data or model files that the user can fix; the message names it."""


def exit_on_user_error(main: F) -> F:
    """Run `main`; turn a `UserError` into a one-line message and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]
