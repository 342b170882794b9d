"""Every error the user hears about carries a plain message and a kind that code compares."""

from __future__ import annotations

import pickle

import pytest

from app.core.chat.context_window import ContextFullError
from app.core.common.errors import UserFacingError
from app.core.conversations.recovery import StoreError
from app.core.inference.local.engine_process import EngineCrashed
from app.core.inference.types import EngineError
from app.core.models.gguf_reader import GGUFError


def test_the_kind_is_a_plain_string_with_a_default_per_family() -> None:
    error = EngineError("No model is loaded.", kind=EngineError.NOT_LOADED)
    assert (error.message, str(error), error.kind) == ("No model is loaded.",) * 2 + ("not_loaded",)
    assert type(error.kind) is str
    assert StoreError("A conversation needs a title.").kind == StoreError.INVALID == "invalid"
    assert GGUFError("Cut short.", kind=GGUFError.TRUNCATED).kind == "truncated"
    assert EngineCrashed("It ended.").kind == EngineError.CRASHED
    assert UserFacingError("Something failed.").kind == "failed"


def test_an_old_style_call_with_the_kind_first_fails_loudly() -> None:
    with pytest.raises(TypeError):
        EngineError(EngineError.MISSING, "The model file does not exist.")  # type: ignore[misc]


@pytest.mark.parametrize("error", [
    EngineError("Too long.", kind=EngineError.CONTEXT_TOO_SMALL),
    EngineCrashed("The model did not stop in time.", stopped=True),
    StoreError("The disk is full.", kind=StoreError.FULL),
    ContextFullError(5000, 4096, 512, message_too_long=True),
], ids=lambda e: type(e).__name__)
def test_errors_cross_a_process_boundary_whole(error: UserFacingError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.kind, str(copy)) == (error.message, error.kind, str(error))
    assert vars(copy) == vars(error)  # EngineCrashed.stopped, ContextFullError.needed, ...
