"""Conversations and messages, as plain data.

Messages form a tree: each message follows its parent (None for the first). Siblings are
versions of one turn (a regenerated answer, an edited question); one of them is `current`.
The thread shown and sent to the model follows the current version at every turn.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from app.core.chat.sampling import SamplingParams
from app.core.inference.types import ChatMessages

TITLE_LENGTH = 48
DEFAULT_TITLE = "New chat"
ROLES = ("system", "user", "assistant")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class GenerationRecord:
    """How an answer was made: enough to understand, compare and reproduce it."""

    model_file: str = ""  # file name of the GGUF
    model_size: int = 0  # bytes
    model_sha256: str = ""
    sampling: dict = field(default_factory=dict)  # SamplingParams.to_dict()
    seed: int | None = None  # the seed actually used
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    stop_reason: str = ""  # "eos", "length", "context_full", "user"; "" while streaming
    llama_cpp_version: str = ""
    dropped_messages: int = 0  # earlier messages not sent to the model: the context was full
    thought_s: float = 0.0  # seconds a reasoning model spent thinking before it answered
    # Where a remote engine's answer came from ("" for the local engine): the connection's name, the
    # server's host, the model id and system_fingerprint the server reported, its own decode speed.
    connection: str = ""
    server_host: str = ""
    server_model: str = ""
    system_fingerprint: str = ""
    server_tokens_per_s: float = 0.0
    # Speculative decoding (the local engine): what drafted ("prompt lookup", "draft model <file>"; ""
    # when nothing did), the tokens guessed and accepted, and whether "auto" paused drafting (at
    # least once) because too few guesses were right.
    drafting: str = ""
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    drafting_turned_off: bool = False

    @property
    def acceptance(self) -> float | None:
        """The share of drafted tokens the model accepted; None when nothing was drafted."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None


@dataclass
class Message:
    role: str  # one of ROLES
    text: str
    id: str = field(default_factory=new_id)
    parent_id: str | None = None
    created: float = field(default_factory=time.time)
    current: bool = True  # the shown version among its siblings
    incomplete: bool = False  # stopped, cut off by an error, or by a crash mid-answer
    generation: GenerationRecord | None = None  # assistant messages only
    # A reasoning model's thought (<think>…</think>), kept apart: `text` is the answer only, so the
    # history sent to the model, titles, search and copies leave the thought out.
    thought: str = ""


@dataclass
class Conversation:
    title: str = DEFAULT_TITLE
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    system_prompt: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    model: str = ""  # file name of the model last used (the model id on the server, for a remote one)
    connection: str = ""  # the remote engine's connection that answers it; "" = the local engine
    pinned: bool = False
    titled_by_user: bool = False
    messages: list[Message] = field(default_factory=list)  # every version, in creation order

    def thread(self) -> list[Message]:
        """The current path through the tree: what the user sees and the model reads."""
        children: dict[str | None, list[Message]] = {}
        for message in self.messages:
            children.setdefault(message.parent_id, []).append(message)
        path: list[Message] = []
        parent: str | None = None
        while parent in children:
            siblings = children[parent]
            chosen = next((m for m in reversed(siblings) if m.current), siblings[-1])
            path.append(chosen)
            parent = chosen.id
        return path

    def versions(self, message: Message) -> list[Message]:
        """The message and its siblings, oldest first."""
        return [m for m in self.messages if m.parent_id == message.parent_id]

    def find(self, message_id: str) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def make_current(self, message: Message) -> None:
        """Show this version of its turn (and the branch that follows it)."""
        for sibling in self.versions(message):
            sibling.current = sibling is message

    def add_version(self, message: Message, role: str, text: str) -> Message:
        """A new version of `message`'s turn (a regenerated answer, an edited question)."""
        version = Message(role, text, parent_id=message.parent_id)
        self.messages.append(version)
        self.make_current(version)
        self.updated = version.created
        return version

    def thread_before(self, message: Message) -> list[Message]:
        """The current thread up to, not including, `message`'s turn."""
        thread = self.thread()
        for i, m in enumerate(thread):
            if m.parent_id == message.parent_id:
                return thread[:i]
        return thread

    def removal(self, message: Message) -> tuple[set[str], Message | None]:
        """What deleting `message` removes (it and what follows from it), and the version of its
        turn that takes its place (the current one left, else the newest), if any."""
        ids = {m.id for m in self.subtree(message)}
        siblings = [m for m in self.versions(message) if m.id not in ids]
        return ids, next((m for m in siblings if m.current), siblings[-1] if siblings else None)

    def versions_to_show(self, message: Message) -> list[Message]:
        """The versions to make current so that the thread passes through `message` (a search hit
        in a version not shown): it and the messages before it that are not the chosen version."""
        by_id = {m.id: m for m in self.messages}
        path: list[Message] = []
        at: Message | None = message
        while at is not None:
            path.append(at)
            at = by_id.get(at.parent_id) if at.parent_id else None
        shown = {m.id for m in self.thread()}
        return [m for m in reversed(path) if m.id not in shown]

    def subtree(self, message: Message) -> list[Message]:
        """The message and everything that follows from it, in any version."""
        found, frontier = [message], {message.id}
        for m in self.messages:  # creation order: children come after parents
            if m.parent_id in frontier:
                found.append(m)
                frontier.add(m.id)
        return found

    def append(self, role: str, text: str) -> Message:
        """Add a message after the current thread's last one."""
        thread = self.thread()
        message = Message(role, text, parent_id=thread[-1].id if thread else None)
        self.messages.append(message)
        self.updated = message.created
        if role == "user" and not self.titled_by_user and not any(m.role == "user" for m in thread):
            self.title = title_from(text)
        return message

    def chat_messages(self, thread: list[Message] | None = None) -> ChatMessages:
        """What the model reads: the system prompt, then the thread's messages (the current one)."""
        chat = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        thread = self.thread() if thread is None else thread
        chat += [{"role": m.role, "content": m.text} for m in thread if m.text]
        return chat


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


@dataclass(frozen=True)
class ConversationSummary:
    """A conversation as a list shows it."""

    id: str
    title: str
    created: float
    updated: float
    pinned: bool
    message_count: int | None  # None: not counted (the window's list asks for one when shown)
