"""A reasoning model's thought is told apart from its answer, also while it streams."""

from app.core.chat.reasoning import (
    ANSWER,
    THOUGHT,
    Reasoned,
    ReasoningSplitter,
    answer_only,
    split_reasoning,
    thought_label,
)


def test_a_closed_thought_is_kept_apart_from_the_answer():
    text = "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?"
    assert split_reasoning(text) == Reasoned(
        "The user greets me. I should greet back.", "Hello! How can I help?")


def test_text_without_a_thought_is_all_answer():
    assert split_reasoning("Plain answer with <think> in the middle.") == Reasoned(
        "", "Plain answer with <think> in the middle.")
    assert answer_only("  Just text") == "  Just text"


def test_a_template_that_opens_the_thought_in_the_prompt():
    assert split_reasoning("Counting words.</think>Four.", opened=True) == Reasoned(
        "Counting words.", "Four.")
    assert split_reasoning("Still counting", opened=True) == Reasoned("Still counting", "")


def test_an_answer_stopped_mid_thought_keeps_the_thought():
    finished = split_reasoning("<think>I was about to say")
    assert finished == Reasoned("I was about to say", "")
    assert answer_only("<think>x</think>The answer.") == "The answer."


# ---------------------------------------------------------------- the splitter a streaming answer uses

def split_stream(deltas: list[str], **options) -> tuple[str, str, list[tuple[str, str]]]:
    """(thought, answer, every piece) of a stream fed delta by delta, then finished."""
    splitter = ReasoningSplitter(**options)
    pieces = [piece for delta in deltas for piece in splitter.feed(delta)] + splitter.finish()
    thought = "".join(text for kind, text in pieces if kind == THOUGHT)
    return thought, "".join(text for kind, text in pieces if kind == ANSWER), pieces


def test_tags_split_across_deltas_are_never_shown_as_text():
    deltas = ["  <", "thi", "nk>\n", "I add", " 2 and 2", ".\n</", "thi", "nk", ">\n\n", "The answer",
              " is 4."]
    thought, answer, pieces = split_stream(deltas)
    assert (thought, answer) == ("I add 2 and 2.", "The answer is 4.")
    assert all("<" not in text and ">" not in text for _, text in pieces)
    # the same as splitting the whole text at once
    assert split_reasoning("".join(deltas)) == Reasoned(thought, answer)


def test_every_piece_comes_as_soon_as_it_can_be_told():
    assert ReasoningSplitter().feed("<thi") == []  # not flashed as an answer: it may become a tag
    assert split_reasoning("<thi") == Reasoned("", "<thi")  # once finished, it is what the model wrote
    splitter = ReasoningSplitter()
    assert splitter.feed("<think>") == []
    assert splitter.thinking
    assert splitter.feed("Counting") == [(THOUGHT, "Counting")]
    assert splitter.feed(" words </th") == [(THOUGHT, " words")]  # the tag and the space held back
    assert splitter.feed("ink>") == []
    assert not splitter.thinking
    assert splitter.feed(" Four.") == [(ANSWER, "Four.")]


def test_an_answer_without_a_thought_streams_unchanged():
    thought, answer, pieces = split_stream(["Hello", ", ", "world", "."])
    assert (thought, answer) == ("", "Hello, world.")
    assert pieces == [(ANSWER, "Hello"), (ANSWER, ", "), (ANSWER, "world"), (ANSWER, ".")]
    splitter = ReasoningSplitter()
    assert splitter.feed("<b>bold</b>") == [(ANSWER, "<b>bold</b>")]  # not a tag it holds back


def test_a_think_tag_in_the_middle_is_just_text():
    thought, answer, _ = split_stream(["Use ", "<think>", " tags.", " </think> too"])
    assert (thought, answer) == ("", "Use <think> tags. </think> too")


def test_the_start_of_a_tag_that_never_completes_is_the_models_text():
    assert split_stream(["<thi"])[:2] == ("", "<thi")
    assert split_stream(["<think>Still thinking when it stopped </thi"])[:2] == (
        "Still thinking when it stopped </thi", "")


def test_an_opened_thought_and_a_continued_answer():
    assert split_stream(["Counting.", "</think>", "Four."], opened=True)[:2] == ("Counting.", "Four.")
    assert split_stream(["<think>", "Counting.", "</think>Four."], opened=True)[:2] == ("Counting.", "Four.")
    splitter = ReasoningSplitter(answering=True)
    assert not splitter.thinking
    assert splitter.feed("<think>more") == [(ANSWER, "<think>more")]


def test_the_label_of_a_folded_thought_says_how_long_it_took():
    assert [thought_label(s) for s in (0, 0.4, 4.4, 59.6, 125, 180)] == [
        "Thought", "Thought for less than a second", "Thought for 4 s", "Thought for 1 min",
        "Thought for 2 min 5 s", "Thought for 3 min"]
