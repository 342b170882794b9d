"""`python -m app connections add | list | test | remove`: remote servers, for scripts and terminals.

Output is stable (see app/cli.py). The key is read from stdin (`--key-stdin`, one line), never from
the command line, where `ps` and the shell's history would show it; it is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.cli import _one_line, _printable
from app.core.common.errors import UserFacingError
from app.core.common.text import plural
from app.core.remote.connections import Connection, ConnectionsFile, checked, parse_header
from app.core.remote.keys import check_key, key_store


class _RefuseKey(argparse.Action):
    """`--key VALUE`: refused without repeating the value (argparse would echo it as unrecognized)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error("the key is read from stdin with --key-stdin, never from the command line, where "
                     "`ps` and the shell's history would keep it")


def add_parser(subparsers) -> None:
    connections = subparsers.add_parser("connections", help="add, list, test or remove remote servers")
    actions = connections.add_subparsers(dest="connections_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an OpenAI-compatible server (llama-server, vLLM, Ollama…)")
    add.add_argument("name")
    add.add_argument("url", help="the base URL, e.g. http://gpu-box:8080/v1")
    add.add_argument("--key-stdin", action="store_true", help="read the API key from stdin (one line)")
    add.add_argument("--key", nargs="?", action=_RefuseKey, help=argparse.SUPPRESS)
    add.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                     help="an extra header sent with every request (repeatable)")
    add.add_argument("--timeout", type=float, default=60.0, metavar="S",
                     help="seconds to wait for the server (default 60)")
    actions.add_parser("list", help="one line each: name, URL, whether a key is stored")
    test = actions.add_parser("test", help="list the server's models")
    test.add_argument("name")
    remove = actions.add_parser("remove", help="forget a connection and its key")
    remove.add_argument("name")


def run(args: argparse.Namespace) -> int:
    try:
        action = args.connections_action
        if action == "add":
            return add(args.name, args.url, args.header, args.timeout, args.key_stdin)
        if action == "list":
            return list_connections()
        if action == "test":
            return test(args.name)
        return remove(args.name)
    except UserFacingError as error:
        print(_one_line(error.message), file=sys.stderr)
        return 1


def _known(file: ConnectionsFile, name: str) -> Connection:
    connection = file.get(name)
    if connection is None:
        raise UserFacingError(f"No connection named {name}: see `python -m app connections list`.")
    return connection


def add(name: str, url: str, headers: list[str], timeout_s: float, key_stdin: bool) -> int:
    """Checks everything before storing anything; the key first, so that a listed connection
    always has the key it was given."""
    file = ConnectionsFile()
    connection = checked(Connection(name, url, tuple(parse_header(h) for h in headers), timeout_s))
    if file.get(connection.name) is not None:
        raise UserFacingError(f"A connection named {connection.name} exists: remove it first")
    key = ""
    if key_stdin:
        key = check_key(sys.stdin.readline())
        if not key:
            raise UserFacingError("--key-stdin was given but stdin held no key.")
    keys = key_store()
    if key:
        keys.set(connection.name, key)
    else:
        keys.delete(connection.name)  # a key left behind by an older connection of that name
    try:
        connection = file.put(connection)
    except UserFacingError:
        if key:
            keys.delete(connection.name)
        raise
    where = f"key in {keys.where}" if key else "no key"
    print(f"Added {connection.name}: {connection.base_url} ({where})")
    return 0


def list_connections() -> int:
    """NAME<TAB>URL<TAB>key|no key."""
    keys = key_store()
    for connection in ConnectionsFile().load():
        has_key = "key" if keys.get(connection.name) else "no key"
        print(f"{connection.name}\t{connection.base_url}\t{has_key}")
    return 0


def test(name: str) -> int:
    """`NAME: N models at HOST`, then one model id per line."""
    connection = _known(ConnectionsFile(), name)
    models = asyncio.run(_models(connection, key_store().get(connection.name)))
    print(f"{connection.name}: {plural(len(models), 'model')} at {connection.host}")
    for model in models:
        print(_printable(model.id))
    return 0


async def _models(connection: Connection, key: str) -> list:
    from app.core.remote.client import OpenAIClient

    client = OpenAIClient(connection, key)
    try:
        return await client.models()
    finally:
        await client.aclose()


def remove(name: str) -> int:
    file = ConnectionsFile()
    connection = _known(file, name)
    key_store().delete(connection.name)
    file.remove(connection.name)
    print(f"Removed {connection.name}")
    return 0
