"""Sub-commands for scripts and terminal users: conversations, export, import, models, connections,
ask, serve, doctor.

Output is stable: scripts rely on it. Exit codes: 0 success, 1 bad input or failure (with a
one-line message on stderr), 2 wrong usage (argparse), 141 the reader of stdout went away
(`| head`; see app/__main__.py). Ids and titles print with control characters escaped.
"""

from __future__ import annotations

import argparse
import json
import logging
import struct
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from app.core.common.errors import UserFacingError
from app.core.conversations.store import ConversationStore, StoreError, default_store_path
from app.core.conversations.transcript_json import CONTROL_CHARACTERS, FORMATS, TranscriptError

CLI_BUSY_TIMEOUT_MS = 5000  # a terminal user can wait longer than a window


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
    export.add_argument("--with-thoughts", action="store_true",
                        help="include reasoning models' thoughts (<think>…</think>), left out by default")
    import_ = subparsers.add_parser("import", help="add the conversations of a Llamadesk JSON file")
    import_.add_argument("file", type=Path)
    models = subparsers.add_parser("models", help="list, inspect or download GGUF models")
    actions = models.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every model in the library, one per line")
    info = actions.add_parser("info", help="a model's header facts and memory needs, as JSON")
    info.add_argument("path", type=Path)
    download = actions.add_parser("download", help="download a GGUF file from Hugging Face")
    download.add_argument("repo_id")
    download.add_argument("filename")
    download.add_argument("--token", help="a Hugging Face access token (default: the saved one)")
    from app import cli_connections

    cli_connections.add_parser(subparsers)
    from app import cli_ask

    cli_ask.add_parser(subparsers)
    from app import cli_serve

    cli_serve.add_parser(subparsers)
    doctor = subparsers.add_parser("doctor", help="check the database, KV snapshots and settings files")
    doctor.add_argument("--recover", action="store_true",
                        help="copy what a damaged database still holds into a new one (keeps the old)")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    finally:  # a settings file found damaged and set aside: said once, after the command's output
        from app.core.common import settings_file

        for notice in settings_file.take_notices():
            print(notice, file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    # A console or pipe that cannot show a character (cp1252 on Windows) must not crash a command
    # after its work is done: such characters print as "?".
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    if args.command == "models":
        return models_command(args)
    if args.command == "connections":
        from app import cli_connections

        return cli_connections.run(args)
    if args.command == "ask":
        from app import cli_ask

        return cli_ask.run(args)
    if args.command == "serve":
        from app import cli_serve

        return cli_serve.run(args)
    if args.command == "doctor":
        from app import doctor

        return doctor.run(recover=args.recover)
    try:
        store = ConversationStore(default_store_path(), busy_timeout_ms=CLI_BUSY_TIMEOUT_MS)
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


def _printable(text: str) -> str:
    """Control characters shown escaped (a tab as \\t, ESC as \\x1b): text from a file or an old
    database can neither forge a line or column of tab-separated output nor drive the terminal."""
    return CONTROL_CHARACTERS.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"),
                                  text)


def _one_line(text: str) -> str:
    """Runs of whitespace (tabs, line breaks) as one space, other control characters escaped."""
    return _printable(" ".join(text.split()))


def list_conversations(store: ConversationStore) -> int:
    """One line each: id, title, message count, updated (UTC, ISO 8601), tab-separated."""
    for s in store.list_conversations():
        updated = datetime.fromtimestamp(s.updated, UTC).isoformat(timespec="seconds")
        print(f"{_printable(s.id)}\t{_one_line(s.title)}\t{s.message_count}\t{updated}")
    return 0


def export(store: ConversationStore, args: argparse.Namespace) -> int:
    from app.core.conversations import transfer

    ids = None if args.all else [_conversation_id(store, args.conversation)]
    for path in transfer.export_conversations(store, args.format, args.out, ids, thoughts=args.with_thoughts):
        print(path)
    return 0


def _conversation_id(store: ConversationStore, given: str) -> str:
    """The id the user means: an exact id, or the one id that starts with what they typed."""
    summaries = store.list_conversations()
    exact = [s.id for s in summaries if s.id == given]
    matches = exact or [s.id for s in summaries if s.id.startswith(given)]
    if len(matches) != 1 or not given:
        what = "no conversation" if not matches else f"{len(matches)} conversations"
        raise CommandError(f"The id {given!r} matches {what}: see `python -m app conversations list`.")
    return matches[0]


def import_file(store: ConversationStore, path: Path) -> int:
    from app.core.conversations import transfer

    for added in transfer.import_file(store, path):  # validates everything before writing anything
        print(f"imported\t{_printable(added.id)}\t{_one_line(added.title)}")
    return 0


# ---------------------------------------------------------------------------- models


def models_command(args: argparse.Namespace) -> int:
    try:
        if args.models_action == "list":
            return list_models()
        if args.models_action == "info":
            return model_info(args.path)
        return download_model(args.repo_id, args.filename, args.token)
    except UserFacingError as error:
        print(_one_line(error.message), file=sys.stderr)
        return 1


def list_models() -> int:
    """One line each, tab-separated: name, architecture, quantisation, size, trained context,
    path. A broken model shows `broken: REASON` in place of its architecture and `-` for what
    its header would have told."""
    from app.core.models.library import ModelLibrary
    from app.core.models.library_files import human_size

    for entry in ModelLibrary().scan():
        if entry.header is None:
            columns = [entry.name, f"broken: {entry.error}", "-", human_size(entry.size), "-"]
        else:
            h = entry.header
            columns = [entry.name, h.architecture, h.quantization, human_size(entry.size),
                       str(h.context_length or "-")]
        print("\t".join(_one_line(c) for c in [*columns, str(entry.path)]))
    return 0


def model_info(path: Path) -> int:
    """The header's facts and the memory estimate for the default load (context min(trained,
    4096), CPU only), with the verdict against the RAM available now, and what would draft tokens
    (speculative decoding) with its memory, as one JSON object."""
    from app.core.common.system import available_ram_bytes
    from app.core.inference.types import LoadOptions
    from app.core.models import drafting_plan, memory
    from app.core.models.gguf_info import read_model

    try:
        header = read_model(path)
        n_ctx = min(header.context_length or 4096, 4096)
        estimate = memory.estimate(header, n_ctx, n_gpu_layers=0)
        available = available_ram_bytes()
        facts = {"path": str(header.path), **header.facts()}
        facts["memory"] = {**estimate.as_dict(), "available_ram": available,
                           "verdict": memory.verdict(estimate, available, None)}
        drafting = drafting_plan.plan(header, n_ctx, LoadOptions(n_ctx=n_ctx, n_gpu_layers=0), available)
        facts["drafting"] = {"source": drafting.source, "note": drafting.note,
                             "extra_ram_bytes": drafting.extra_ram}
        text = json.dumps(facts, indent=2, ensure_ascii=False)
    except UserFacingError:
        raise
    except _UNREADABLE as error:  # a damage the header checks missed: still one line, no traceback
        logging.getLogger(__name__).info("models info %s failed", path, exc_info=True)
        print(f"Cannot read {path}: {_one_line(_why(error))}", file=sys.stderr)
        return 1
    print(text)
    return 0


# What a damaged model file can still make the header parser or the estimate raise.
_UNREADABLE = (OSError, ValueError, TypeError, ArithmeticError, LookupError, RecursionError, MemoryError,
               struct.error)


def _why(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "its metadata is nested too deeply to be a model header."
    if isinstance(error, MemoryError):
        return "its header declares more data than fits in memory."
    if isinstance(error, OSError):
        return f"{error.strerror or error}."
    return f"its header is damaged ({type(error).__name__}: {error})."


def download_model(repo_id: str, filename: str, token: str | None) -> int:
    """Progress on stderr as one updating line; the library path of the file on stdout."""
    from app import paths
    from app.core.models import hub
    from app.core.models.download_files import repo_folder
    from app.core.models.library_files import human_size

    last = 0.0

    def show(p: hub.DownloadProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.25 and p.done < p.total:
            return
        last = now
        share = f"{p.done / p.total:6.1%}" if p.total else "     ?"
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        print(f"\r{share} {human_size(p.done)} of {human_size(p.total)} at "
              f"{human_size(int(p.bytes_per_s))}/s{left}   ", end="", file=sys.stderr, flush=True)

    try:
        dest_dir = repo_folder(paths.models_dir(), repo_id)  # models/<owner>/<repo>/, as the app
        path = hub.download(repo_id, filename, dest_dir=dest_dir,
                            token=token or hub.load_token(), progress=show)
    except KeyboardInterrupt:
        print("\nDownload cancelled.", file=sys.stderr)
        return 1
    finally:
        if last:
            print(file=sys.stderr)  # end the progress line
    print(path)
    return 0
