"""A reasoning model's thought is told apart from its answer, also while it streams."""

from app.core.chat.reasoning import Reasoned, answer_only, split_reasoning


def test_a_closed_thought_is_kept_apart_from_the_answer():
    text = "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?"
    assert split_reasoning(text) == Reasoned(
        "The user greets me. I should greet back.", "Hello! How can I help?", False)


def test_text_without_a_thought_is_all_answer():
    assert split_reasoning("Plain answer with <think> in the middle.") == Reasoned(
        "", "Plain answer with <think> in the middle.", False)
    assert answer_only("  Just text") == "  Just text"


def test_while_streaming_an_open_thought_shows_as_thinking():
    assert split_reasoning("<think>Let me count: 1, 2", streaming=True) == Reasoned(
        "Let me count: 1, 2", "", True)
    # the closing tag arriving token by token is not shown as part of the thought
    assert split_reasoning("<think>So it is 4.</thi", streaming=True).thought == "So it is 4."


def test_the_first_characters_of_the_tag_are_not_flashed_as_an_answer():
    assert split_reasoning("<thi", streaming=True) == Reasoned("", "", True)
    # once finished, the same text is what the model wrote
    assert split_reasoning("<thi") == Reasoned("", "<thi", False)


def test_a_template_that_opens_the_thought_in_the_prompt():
    assert split_reasoning("Counting words.</think>Four.", opened=True) == Reasoned(
        "Counting words.", "Four.", False)
    assert split_reasoning("Still counting", opened=True, streaming=True) == Reasoned(
        "Still counting", "", True)


def test_an_answer_stopped_mid_thought_keeps_the_thought():
    finished = split_reasoning("<think>I was about to say")
    assert finished == Reasoned("I was about to say", "", False)
    assert answer_only("<think>x</think>The answer.") == "The answer."
