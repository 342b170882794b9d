"""The one kind of failure the user hears about: `message` is written for people, `kind` for code.

Each subclass names its kinds as plain string constants (`EngineError.CONTEXT_TOO_SMALL`), so a
kind compares, logs and crosses the engine's process boundary as the string it is.
"""

from __future__ import annotations

from typing import Any, ClassVar


class UserFacingError(Exception):
    """A failure with a plain-language `message` and a `kind` that code may branch on.

    `kind` is keyword-only so that an old positional call (kind, message) fails loudly instead of
    swapping the two.
    """

    DEFAULT_KIND: ClassVar[str] = "failed"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind: str = str(kind) if kind is not None else self.DEFAULT_KIND

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by message and kind, whatever a subclass's own constructor takes."""
        return _rebuild, (type(self), self.message, self.kind), self.__dict__


def _rebuild(cls: type[UserFacingError], message: str, kind: str) -> UserFacingError:
    error = cls.__new__(cls)
    UserFacingError.__init__(error, message, kind=kind)
    return error
