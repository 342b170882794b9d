"""The command line as scripts use it: `python -m app conversations list | export | import`.

Every case runs the app as a separate process, exactly as a terminal user or a script would, with
LLAMADESK_HOME pointing at a temporary folder. The database is seeded in-process at the path the app
computes itself (app.core.conversations.store.default_store_path under the same LLAMADESK_HOME).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.core.conversations import transcripts
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import SCHEMA_VERSION, ConversationStore, default_store_path
from tests.e2e.conftest import assert_fails, assert_usage_error, run_cli
from tests.fixtures.golden import T0, sample_conversation, second_conversation

REPO = Path(__file__).resolve().parents[2]

SAMPLE_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
SECOND_ID = "5ec0d000000000000000000000000002"
THIRD_ID = "5ec0d000000000000000000000000003"  # shares the prefix "5ec0d" with SECOND_ID
DELETED_ID = "de1e7ed0000000000000000000000004"
LISTED_IDS = [SAMPLE_ID, SECOND_ID, THIRD_ID]  # pinned first, then most recently updated
LISTING = (
    f'{SAMPLE_ID}\tLists & <tags> in "Python" 🐍\t7\t2023-11-14T22:14:55+00:00\n'
    f"{SECOND_ID}\tSecond chat\t2\t2023-11-14T22:30:01+00:00\n"
    f"{THIRD_ID}\tTabs and new lines here\t1\t2023-11-14T22:21:40+00:00\n"
)
DELETE = object()  # in bad-file variants: remove the key
RENDER = {"md": transcripts.to_markdown, "html": transcripts.to_html, "txt": transcripts.to_text}


@contextmanager
def opened(database: Path) -> Iterator[ConversationStore]:
    store = ConversationStore(database)
    try:
        yield store
    finally:
        store.close()


def load(database: Path, *ids: str) -> list[Conversation]:
    with opened(database) as store:
        return [store.load(i) for i in ids]


def store_path(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The database path the app computes for LLAMADESK_HOME=home."""
    with monkeypatch.context() as patch:
        patch.setenv("LLAMADESK_HOME", str(home))
        return default_store_path()


def dump(database: Path) -> list[str]:
    """Everything in the database, as SQL."""
    db = sqlite3.connect(database)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def third_conversation() -> Conversation:
    return Conversation(title="Tabs\tand\nnew lines\r\n  here ", id=THIRD_ID, created=T0 + 400,
                        updated=T0 + 500, messages=[Message("user", "A question", id="t1", created=T0 + 400)])


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("llamadesk-cli-home")
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    return home


@pytest.fixture
def database(home: Path) -> Path:
    """Where the app keeps its conversations for this LLAMADESK_HOME (computed the app's way)."""
    path = default_store_path()
    assert path.is_relative_to(home.resolve())
    return path


@pytest.fixture
def seeded(database: Path) -> Path:
    """The two golden conversations, one with a messy title, and one deleted (hidden) conversation."""
    deleted = Conversation(title="Deleted", id=DELETED_ID, created=T0 + 2000, updated=T0 + 2000,
                           messages=[Message("user", "Gone", id="d1", created=T0 + 2000)])
    with opened(database) as store:
        store.insert_conversations([sample_conversation(), second_conversation(), third_conversation(),
                                    deleted])
        store.delete(DELETED_ID)
    return database


# ------------------------------------------------------------------------------ conversations list

def test_list_on_an_empty_store_prints_nothing(home: Path, database: Path, tmp_path: Path) -> None:
    result = run_cli(home, "conversations", "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # An export of everything has nothing to write: a clear failure, not an empty file.
    out = tmp_path / "all"
    assert_fails(run_cli(home, "export", "--all", "--format", "md", "--out", str(out)), "no conversation")
    assert not out.exists()


def test_list_prints_one_flat_line_per_conversation_pinned_first_then_latest(home: Path,
                                                                             seeded: Path) -> None:
    result = run_cli(home, "conversations", "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == LISTING
    for line in result.stdout.splitlines():
        assert len(line.split("\t")) == 4, line


# ------------------------------------------------------------------------------ export

def test_export_one_conversation_by_full_id_or_unique_prefix(home: Path, seeded: Path,
                                                             tmp_path: Path) -> None:
    [conversation] = load(seeded, SAMPLE_ID)
    expected_files = []
    for fmt in transcripts.FORMATS:
        for ident in (SAMPLE_ID, "c0ffee"):
            out = tmp_path / f"{ident}.{fmt}"
            result = run_cli(home, "export", "--conversation", ident, "--format", fmt, "--out", str(out))
            assert (result.returncode, result.stdout, result.stderr) == (0, f"{out}\n", ""), ident
            text = out.read_bytes().decode("utf-8")
            if fmt == "json":
                assert transcripts.from_json(text) == [conversation], "re-imports to an equal conversation"
            else:
                assert text == RENDER[fmt](conversation)
            expected_files.append(out.name)
    # An existing folder as --out: the file goes inside it, named after the title.
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run_cli(home, "export", "--conversation", SECOND_ID, "--format", "txt", "--out", str(folder))
    assert (result.returncode, result.stdout) == (0, f"{folder / 'Second chat.txt'}\n")
    assert (folder / "Second chat.txt").read_text(encoding="utf-8") == transcripts.to_text(
        *load(seeded, SECOND_ID))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*expected_files, "folder"]), "no temp files"


def test_export_all_as_markdown_writes_one_file_per_conversation(home: Path, seeded: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "backup"  # created by the export
    result = run_cli(home, "export", "--all", "--format", "md", "--out", str(out))
    names = ["Lists & -tags- in -Python- 🐍-c0ffee00.md", "Second chat-5ec0d000.md",
             "Tabs and new lines here-5ec0d000.md"]
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [str(out / name) for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name, conversation in zip(names, load(seeded, *LISTED_IDS), strict=True):
        assert (out / name).read_bytes().decode("utf-8") == transcripts.to_markdown(conversation)


def test_export_all_as_json_writes_one_file_holding_all(home: Path, seeded: Path, tmp_path: Path) -> None:
    everything = load(seeded, *LISTED_IDS)
    out = tmp_path / "everything.json"
    result = run_cli(home, "export", "--all", "--format", "json", "--out", str(out))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{out}\n", "")
    assert transcripts.from_json(out.read_bytes()) == everything
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run_cli(home, "export", "--all", "--format", "json", "--out", str(folder))
    inside = folder / "llamadesk-conversations.json"
    assert (result.returncode, result.stdout) == (0, f"{inside}\n")
    assert sorted(folder.iterdir()) == [inside]
    assert transcripts.from_json(inside.read_bytes()) == everything


def test_export_of_an_unknown_or_ambiguous_id_fails_and_writes_nothing(home: Path, seeded: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cases = [("deadbeef", "md", "matches no conversation"),
             (DELETED_ID, "json", "matches no conversation"),  # deleted: hidden until purged
             ("5ec0d", "html", "matches 2 conversations"),
             ("", "txt", "matches 3 conversations")]
    for ident, fmt, problem in cases:
        result = run_cli(home, "export", "--conversation", ident, "--format", fmt,
                         "--out", str(out / f"x.{fmt}"))
        assert_fails(result, repr(ident), problem)
    result = run_cli(home, "export", "--conversation", SAMPLE_ID, "--format", "md",
                     "--out", str(out / "no-such-folder" / "x.md"))
    assert_fails(result, "Could not write", "no-such-folder")
    assert list(out.iterdir()) == []


def test_usage_errors_exit_2_and_write_nothing(home: Path, seeded: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out.md")
    for args in [
        ("export", "--conversation", SAMPLE_ID, "--format", "md"),  # no --out
        ("export", "--all", "--conversation", SAMPLE_ID, "--format", "md", "--out", out),
        ("export", "--all", "--format", "pdf", "--out", out),
        ("export", "--all", "--out", out),  # no --format
        ("export", "--format", "md", "--out", out),  # neither --all nor --conversation
        ("conversations",),
        ("conversations", "delete"),
        ("import",),
        ("frobnicate",),
    ]:
        assert_usage_error(run_cli(home, *args))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ import

def test_import_adds_the_conversations_of_an_export_and_again_adds_copies(
        home: Path, database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with opened(database) as store:
        store.insert_conversations([sample_conversation(), second_conversation()])
    originals = load(database, SAMPLE_ID, SECOND_ID)
    export = tmp_path / "export.json"
    assert run_cli(home, "export", "--all", "--format", "json", "--out", str(export)).returncode == 0
    listing = run_cli(home, "conversations", "list").stdout

    other = tmp_path / "other-home"
    other_database = store_path(other, monkeypatch)
    result = run_cli(other, "import", str(export))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [f"imported\t{c.id}\t{c.title}" for c in originals]
    assert run_cli(other, "conversations", "list").stdout == listing
    assert load(other_database, SAMPLE_ID, SECOND_ID) == originals

    again = run_cli(other, "import", str(export))
    assert (again.returncode, again.stderr) == (0, "")
    lines = [line.split("\t") for line in again.stdout.splitlines()]
    assert [(word, title) for word, _, title in lines] == [("imported", c.title) for c in originals]
    copy_ids = [copy_id for _, copy_id, _ in lines]
    assert len(set(copy_ids) | {SAMPLE_ID, SECOND_ID}) == 4, "copies get new ids"
    listed = run_cli(other, "conversations", "list").stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == sorted([SAMPLE_ID, SECOND_ID, *copy_ids])
    for original, copied in zip(originals, load(other_database, *copy_ids), strict=True):
        assert transcripts.to_markdown(copied) == transcripts.to_markdown(original)
        assert {m.id for m in copied.messages}.isdisjoint(m.id for m in original.messages)


def test_import_of_a_bad_file_fails_with_a_reason_and_changes_nothing(home: Path, seeded: Path,
                                                                      tmp_path: Path) -> None:
    good = transcripts.to_json([sample_conversation(), second_conversation()])

    def variant(change) -> str:
        document = copy.deepcopy(json.loads(good))
        change(document)
        return json.dumps(document)

    def set_(*path_and_value):
        *path, key, value = path_and_value

        def change(document: dict) -> None:
            node = document
            for step in path:
                node = node[step]
            if value is DELETE:
                del node[key]
            else:
                node[key] = value
        return change

    files: dict[str, tuple[str | bytes | None, tuple[str, ...]]] = {
        "not-json.json": ("Llamas are great.\n", ("not valid JSON",)),
        "truncated.json": (good[: len(good) // 2], ("ends too early",)),
        "empty.json": ("", ("empty",)),
        "latin1.json": (b'{"format": "caf\xe9"}', ("not UTF-8",)),
        "other-format.json": ('{"format": "chatgpt", "conversations": []}',
                              ("not a Llamadesk conversations file",)),
        # The first conversation is fine: the second's error must stop both (nothing half-imported).
        "wrong-role.json": (variant(set_("conversations", 1, "messages", 0, "role", "wizard")),
                            ("conversations[1].messages[0].role",)),
        "missing-text.json": (variant(set_("conversations", 0, "messages", 2, "text", DELETE)),
                              ("conversations[0].messages[2].text is missing",)),
        "newer-file.json": (variant(set_("schema_version", 2)), ("newer Llamadesk",)),
        # m04 -> m05 -> m04, beside a proper root: walking parents from there would never end.
        "parent-cycle.json": (variant(set_("conversations", 0, "messages", 3, "parent_id", "m05-echo")),
                              ("conversations[0].messages[3]", "cycle")),
        "own-parent.json": (variant(set_("conversations", 1, "messages", 0, "parent_id", "s1")),
                            ("conversations[1].messages[0]", "cycle")),
        "foreign-parent.json": (variant(set_("conversations", 1, "messages", 0, "parent_id", "m01-question")),
                                ("'m01-question' is not a message of this conversation",)),
        "same-id.json": (variant(set_("conversations", 1, "id", SAMPLE_ID)),
                         ("conversations[1].id", "earlier conversation")),
        "missing.json": (None, ("Cannot read", "missing.json")),
    }
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, (content, _) in files.items():
        if isinstance(content, str):
            (bad / name).write_text(content, encoding="utf-8")
        elif content is not None:
            (bad / name).write_bytes(content)
    cases = [(bad / name, needles) for name, (_, needles) in files.items()]
    cases.append((bad, ("Cannot read",)))  # a folder

    before = dump(seeded)
    listing = run_cli(home, "conversations", "list").stdout
    assert listing == LISTING
    for path, needles in cases:
        assert_fails(run_cli(home, "import", str(path)), *needles)
        assert dump(seeded) == before, f"importing {path.name} changed the database"
    assert run_cli(home, "conversations", "list").stdout == listing


# ------------------------------------------------------------------------------ a database it cannot use

def test_a_database_from_a_newer_llamadesk_is_refused_and_left_untouched(home: Path, seeded: Path,
                                                                         tmp_path: Path) -> None:
    db = sqlite3.connect(seeded)
    with db:
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                   (SCHEMA_VERSION + 1, "from the future", time.time()))
    db.close()
    before = sha256(seeded)
    export = tmp_path / "export.json"
    export.write_text(transcripts.to_json([second_conversation()]), encoding="utf-8")
    out = tmp_path / "out"
    for args in [("conversations", "list"),
                 ("export", "--all", "--format", "json", "--out", str(out)),
                 ("export", "--conversation", SAMPLE_ID, "--format", "md", "--out", str(out)),
                 ("import", str(export))]:
        assert_fails(run_cli(home, *args), "newer version of Llamadesk", f"schema {SCHEMA_VERSION + 1}")
        assert sha256(seeded) == before, args
    assert not out.exists()


def test_a_database_that_is_not_sqlite_is_refused_and_left_untouched(home: Path, database: Path) -> None:
    database.write_bytes(b"not a database, just forty-odd bytes of text\n" * 100)
    before = sha256(database)
    assert_fails(run_cli(home, "conversations", "list"), "Cannot open the conversation database")
    assert sha256(database) == before


# ------------------------------------------------------------------------------ known bugs

def test_export_by_an_exact_id_that_prefixes_another(home: Path, database: Path, tmp_path: Path) -> None:
    with opened(database) as store:
        store.insert_conversations([
            Conversation(title="Short", id="chat", messages=[Message("user", "x", id="x1", created=T0)]),
            Conversation(title="Long", id="chat-2", messages=[Message("user", "y", id="y1", created=T0)])])
    out = tmp_path / "chat.txt"
    result = run_cli(home, "export", "--conversation", "chat", "--format", "txt", "--out", str(out))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{out}\n", "")
    assert out.read_text(encoding="utf-8") == transcripts.to_text(*load(database, "chat"))


def test_import_prints_one_line_per_conversation_even_for_messy_titles(home: Path, tmp_path: Path) -> None:
    export = tmp_path / "messy.json"
    export.write_text(transcripts.to_json([third_conversation()]), encoding="utf-8")
    result = run_cli(home, "import", str(export))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"imported\t{THIRD_ID}\tTabs and new lines here\n"


def test_export_all_of_a_single_conversation_still_writes_into_a_folder(home: Path, database: Path,
                                                                        tmp_path: Path) -> None:
    with opened(database) as store:
        store.insert_conversations([second_conversation()])
    out = tmp_path / "backup"
    result = run_cli(home, "export", "--all", "--format", "md", "--out", str(out))
    assert (result.returncode, result.stderr) == (0, "")
    assert out.is_dir()
    [written] = result.stdout.splitlines()
    assert Path(written).parent == out
    assert Path(written).read_text(encoding="utf-8") == transcripts.to_markdown(*load(database, SECOND_ID))


def test_output_survives_a_stdout_that_is_not_utf8(home: Path, seeded: Path) -> None:
    result = run_cli(home, "conversations", "list", PYTHONIOENCODING="cp1252")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == len(LISTED_IDS)


# ------------------------------------------------------------------------------ hostile files and pipes

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_import_refuses_a_fifo_and_a_link_to_dev_zero_and_changes_nothing(home: Path, seeded: Path,
                                                                          tmp_path: Path) -> None:
    """A FIFO once blocked the import forever (run_cli's timeout would fail this test); a link to
    /dev/zero was read until the OOM killer came."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    before = dump(seeded)
    assert_fails(run_cli(home, "import", str(fifo)), f"Cannot read {fifo}", "named pipe (FIFO)",
                 "not a regular file")
    assert_fails(run_cli(home, "import", str(zero)), f"Cannot read {zero}", "a device", "not a regular file")
    assert dump(seeded) == before


def test_import_refuses_ids_with_control_characters(home: Path, seeded: Path, tmp_path: Path) -> None:
    forged = f"{SECOND_ID}\tForged title\t99\t2023-01-01T00:00:00+00:00\nextra"
    document = json.loads(transcripts.to_json([second_conversation()]))
    document["conversations"][0]["id"] = forged
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(document), encoding="utf-8")
    before = dump(seeded)
    assert_fails(run_cli(home, "import", str(bad)), "conversations[0].id must not hold control characters")
    assert dump(seeded) == before
    assert run_cli(home, "conversations", "list").stdout == LISTING


def test_list_escapes_the_control_characters_an_old_database_holds(home: Path, database: Path) -> None:
    """Ids and titles stored before imports were checked can neither forge lines or columns nor
    send escape sequences to the terminal."""
    hostile = Conversation(title="Red\x1b[31m alert\x00\x07 here\u2028now", id="old\tid\nforged\x1b",
                           created=T0, updated=T0, messages=[Message("user", "x", id="h1", created=T0)])
    with opened(database) as store:
        store.insert_conversations([hostile])
    result = run_cli(home, "conversations", "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "old\\tid\\nforged\\x1b\tRed\\x1b[31m alert\\x00\\x07 here now\t1\t" \
                            "2023-11-14T22:13:20+00:00\n"


def run_into_closed_pipe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS | head -0`: the reader of stdout is gone before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
        environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8"})
        return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=environment,
                              stdout=write_end, stderr=subprocess.PIPE, encoding="utf-8", timeout=60)
    finally:
        os.close(write_end)


def test_every_command_survives_a_closed_pipe(home: Path, seeded: Path, tmp_path: Path,
                                              model_path: Path) -> None:
    """No BrokenPipeError traceback: the command does its work, then exits 141 (128 + SIGPIPE) in
    silence, as `cat` or `git log` do when the reader of their output goes away."""
    export = tmp_path / "export.json"
    export.write_text(transcripts.to_json([second_conversation()]), encoding="utf-8")
    out = tmp_path / "one.md"
    for args in [("conversations", "list"),
                 ("export", "--conversation", SAMPLE_ID, "--format", "md", "--out", str(out)),
                 ("import", str(export)),
                 ("models", "list"),
                 ("models", "info", str(model_path))]:
        result = run_into_closed_pipe(home, *args)
        assert (result.returncode, result.stderr) == (141, ""), args
    for args in [("--version",), ("--help",)]:  # argparse ignores a failed write itself
        result = run_into_closed_pipe(home, *args)
        assert (result.returncode, result.stderr) == (0, ""), args
    assert out.read_text(encoding="utf-8") == transcripts.to_markdown(*load(seeded, SAMPLE_ID))
    assert len(run_cli(home, "conversations", "list").stdout.splitlines()) == len(LISTED_IDS) + 1


def test_list_piped_into_head_prints_no_traceback(home: Path, database: Path) -> None:
    """`python -m app conversations list | head -1` with more lines than a pipe holds."""
    with opened(database) as store:
        store.insert_conversations([Conversation(title=f"Chat {i} " + "x" * 60, id=f"chat-{i:05d}",
                                                 created=T0 + i, updated=T0 + i,
                                                 messages=[Message("user", "x", id=f"m{i}", created=T0)])
                                    for i in range(3000)])  # about 300 kB of output
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8"})
    process = subprocess.Popen([sys.executable, "-m", "app", "conversations", "list"], cwd=REPO,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               encoding="utf-8")
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    stderr = process.communicate(timeout=60)[1]
    assert first.startswith("chat-02999\tChat 2999 ")
    assert (process.returncode, stderr) == (141, "")


def _nested_arrays_gguf(path: Path, depth: int) -> Path:
    """A GGUF whose one metadata value is an array of an array of … `depth` deep."""
    import struct

    key = b"general.deep"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 9)
    data += struct.pack("<IQ", 9, 1) * depth + struct.pack("<IQI", 4, 1, 7)
    path.write_bytes(data)
    return path


def test_models_info_of_a_damaged_header_is_one_line(home: Path, tmp_path: Path) -> None:
    """A header value the parser did not expect once printed a traceback instead of a reason."""
    from tests.fixtures.gguf_files import write_tiny_llama

    alignment = write_tiny_llama(tmp_path / "alignment.gguf", **{"general.alignment": "abc"})
    deep = _nested_arrays_gguf(tmp_path / "deep.gguf", 5000)
    for path in (alignment, deep):
        line = assert_fails(run_cli(home, "models", "info", str(path)), path.name)
        assert "Traceback" not in line


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"),
                                   ValueError("invalid literal for int() with base 10: 'abc'"),
                                   PermissionError(13, "Permission denied")])
def test_models_info_says_in_one_line_what_the_header_checks_missed(error: Exception, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """The last resort behind the parser's own checks: whatever it raises, one line and exit 1."""
    from app import cli
    from app.core.models import gguf_info

    def damaged(path: Path) -> None:
        raise error

    monkeypatch.setattr(gguf_info, "read_model", damaged)
    model = tmp_path / "model.gguf"
    assert cli.model_info(model) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"Cannot read {model}: ") and err.count("\n") == 1, err
