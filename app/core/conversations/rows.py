"""How conversations and messages map to the database's rows, both ways."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict

from app.core.conversations.conversation import Conversation, GenerationRecord, Message, new_id

INSERT_CONVERSATION = """INSERT INTO conversations (id, title, created, updated, system_prompt, sampling,
    model, pinned, titled_by_user, connection, deleted, importing)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
INSERT_MESSAGE = """INSERT INTO messages (id, conversation_id, parent_id, role, text, created, current,
                                          incomplete, generation, thought)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def conversation_row(c: Conversation) -> tuple:
    """The conversation's own fields, in INSERT_CONVERSATION's order (without deleted, importing)."""
    return (c.id, c.title, c.created, c.updated, c.system_prompt, json.dumps(c.sampling.to_dict()),
            c.model, int(c.pinned), int(c.titled_by_user), c.connection)


def generation_json(m: Message) -> str | None:
    return json.dumps(asdict(m.generation)) if m.generation else None


def message_row(conversation_id: str, m: Message) -> tuple:
    return (m.id, conversation_id, m.parent_id, m.role, m.text, m.created, int(m.current),
            int(m.incomplete), generation_json(m), m.thought)


def message_from_row(r: sqlite3.Row) -> Message:
    generation = GenerationRecord(**json.loads(r["generation"])) if r["generation"] else None
    return Message(role=r["role"], text=r["text"], id=r["id"], parent_id=r["parent_id"],
                   created=r["created"], current=bool(r["current"]), incomplete=bool(r["incomplete"]),
                   generation=generation, thought=r["thought"])


def with_new_ids(conversation: Conversation) -> Conversation:
    """A copy under new ids (its messages' too, their tree kept): for a copy, or an id already taken."""
    mapping = {m.id: new_id() for m in conversation.messages}
    messages = [Message(**{**asdict(m), "id": mapping[m.id],
                           "parent_id": mapping.get(m.parent_id) if m.parent_id else None,
                           "generation": m.generation})
                for m in conversation.messages]
    fields = {k: getattr(conversation, k) for k in conversation.__dataclass_fields__}
    return Conversation(**{**fields, "id": new_id(), "messages": messages})
