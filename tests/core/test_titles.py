"""What a model proposes as a chat title is cleaned into a title, or refused."""

from app.core.chat.titles import MAX_TITLE_CHARS, clean_title, title_request


def test_the_request_carries_the_question_and_the_answer_without_its_thought():
    [message] = title_request("How do lighthouses work?", "<think>hmm</think>They use a lamp and a lens.")
    assert message["role"] == "user"
    assert "How do lighthouses work?" in message["content"] and "lamp and a lens" in message["content"]
    assert "hmm" not in message["content"]


def test_what_small_models_wrap_around_a_title_is_removed():
    assert clean_title('"Lighthouse Basics"') == "Lighthouse Basics"
    assert clean_title("Title: **How Lighthouses Work.**\nThis title sums it up.") == "How Lighthouses Work"
    assert clean_title("<think>a title about light</think>\n# Lighthouses") == "Lighthouses"


def test_a_reply_with_no_title_in_it_is_refused():
    assert clean_title("") is None
    assert clean_title('""\n') is None
    assert clean_title("...") is None


def test_a_long_reply_is_cut_at_a_word():
    title = clean_title("A very long proposed title that keeps going and going well past any sensible size")
    assert title is not None and len(title) <= MAX_TITLE_CHARS and title.endswith("…")
    assert not title[:-1].endswith(" ")
