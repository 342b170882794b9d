"""The model's chat template: rendered like llama-cpp-python does, but never for hours or gigabytes."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from app.core.inference.local import chat_template
from app.core.inference.local.chat_template import ChatTemplate, TemplateError
from app.core.models.gguf_info import read_model
from tests.fixtures.template_models import EMPTY, HUGE_CONSTANT, NESTED_LOOPS

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi {{ there }}"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Name a colour."}]


def test_a_real_template_renders_exactly_as_llama_cpp_python_renders_it(model_path: Path) -> None:
    source = read_model(model_path).metadata["tokenizer.chat_template"]
    ours = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(CHAT)
    theirs = Jinja2ChatFormatter(template=source, eos_token="</s>", bos_token="<s>")(messages=CHAT).prompt
    assert ours == theirs
    assert "Name a colour." in ours


def test_a_huge_constant_is_neither_built_at_compile_time_nor_at_render_time() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    template = ChatTemplate(HUGE_CONSTANT, "", "")  # Jinja alone folds this into a 3 GB string here
    with pytest.raises(TemplateError, match="too large"):
        template.render(CHAT)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100


@pytest.mark.parametrize("source", ["{{ 2 ** 100000000 }}", "{{ [1] * 10**9 }}",
                                    "{% set s = 'ab' * 1500000 %}{{ s + s }}"])
def test_operators_that_build_giant_values_are_refused(source: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        ChatTemplate(source, "", "").render(CHAT)


def test_rendering_past_the_time_limit_stops_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setattr(chat_template, "TIME_LIMIT_S", 0.3)
    template = ChatTemplate(NESTED_LOOPS, "", "")
    with pytest.raises(TemplateError, match="took longer than 0.3 s") as caught:
        template.render(CHAT)
    assert not caught.value.stopped


def test_stop_interrupts_a_template_that_would_run_for_hours() -> None:
    template = ChatTemplate(NESTED_LOOPS, "", "")
    asked = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        template.render(CHAT, should_stop=lambda: time.monotonic() - asked > 0.1)
    assert caught.value.stopped


def test_a_template_that_raises_says_so() -> None:
    source = "{{ raise_exception('Only user and assistant roles are supported!') }}"
    with pytest.raises(TemplateError, match="refused this conversation: Only user and assistant"):
        ChatTemplate(source, "", "").render(CHAT)


def test_a_template_that_does_not_compile_is_refused_when_loaded() -> None:
    with pytest.raises(TemplateError, match="cannot be used"):
        ChatTemplate("{% for m in messages %}", "", "")


def test_an_empty_rendering_is_returned_as_empty() -> None:
    assert ChatTemplate(EMPTY, "", "").render(CHAT) == ""  # the engine refuses it (test_engine_isolation)
