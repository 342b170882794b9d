"""Sub-commands for scripts and terminal users: conversations, export, import.

Output is stable: scripts rely on it. Exit codes: 0 success, 1 bad input or failure (with a
one-line message on stderr), 2 wrong usage (argparse).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from app.core.errors import UserFacingError
from app.core.store import ConversationStore, StoreError, default_store_path
from app.core.transcript_json import FORMATS, TranscriptError


class CommandError(Exception):
    pass


def add_commands(subparsers) -> None:
    conversations = subparsers.add_parser("conversations", help="list stored conversations")
    conversations.add_argument("action", choices=["list"])
    export = subparsers.add_parser("export", help="write conversations as md, html, json or txt")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every conversation")
    which.add_argument("--conversation", metavar="ID", help="one conversation (an id or its prefix)")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", required=True, type=Path,
                        help="a file; a folder for several conversations in md, html or txt")
    import_ = subparsers.add_parser("import", help="add the conversations of a Llamadesk JSON file")
    import_.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> int:
    # A console or pipe that cannot show a character (cp1252 on Windows) must not crash a command
    # after its work is done: such characters print as "?".
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        store = ConversationStore(default_store_path())
    except StoreError as error:
        print(error.message, file=sys.stderr)
        return 1
    try:
        if args.command == "conversations":
            return list_conversations(store)
        if args.command == "export":
            return export(store, args)
        return import_file(store, args.file)
    except (CommandError, TranscriptError, StoreError) as error:
        print(error.message if isinstance(error, UserFacingError) else str(error), file=sys.stderr)
        return 1
    finally:
        store.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def list_conversations(store: ConversationStore) -> int:
    """One line each: id, title, message count, updated (UTC, ISO 8601), tab-separated."""
    for s in store.list_conversations():
        updated = datetime.fromtimestamp(s.updated, UTC).isoformat(timespec="seconds")
        print(f"{s.id}\t{_one_line(s.title)}\t{s.message_count}\t{updated}")
    return 0


def export(store: ConversationStore, args: argparse.Namespace) -> int:
    summaries = store.list_conversations()
    if args.all:
        ids = [s.id for s in summaries]
    else:
        exact = [s.id for s in summaries if s.id == args.conversation]
        matches = exact or [s.id for s in summaries if s.id.startswith(args.conversation)]
        if len(matches) != 1 or not args.conversation:
            what = "no conversation" if not matches else f"{len(matches)} conversations"
            raise CommandError(f"The id {args.conversation!r} matches {what}: "
                               "see `python -m app conversations list`.")
        ids = matches
    conversations = [store.load(i) for i in ids]
    from app.core import transcripts  # Pygments: only for the commands that need it

    for path in transcripts.export_to_path(conversations, args.format, args.out, folder=args.all):
        print(path)
    return 0


def import_file(store: ConversationStore, path: Path) -> int:
    from app.core.transcript_json import read_json_file

    conversations = read_json_file(path)  # validates everything before writing anything
    for conversation_id in store.insert_conversations(conversations):
        print(f"imported\t{conversation_id}\t{_one_line(store.load(conversation_id).title)}")
    return 0
