"""The command line: the GUI by default; --self-test; sub-commands grow with later issues."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk", description=app.__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {app.__version__}")
    parser.add_argument("--model", metavar="PATH", help="load this GGUF file instead of the default")
    parser.add_argument("--self-test", action="store_true",
                        help="drive the real window offscreen: load, ask, print one JSON line")
    from app import cli

    cli.add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def _set_up_logging() -> None:
    from logging.handlers import RotatingFileHandler

    from app import paths

    level = logging.DEBUG if os.environ.get("LLAMADESK_DEBUG") else logging.INFO
    root = logging.getLogger()
    root.setLevel(level)
    file_handler = RotatingFileHandler(paths.log_dir() / "llamadesk.log", maxBytes=2_000_000,
                                       backupCount=2, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if os.environ.get("LLAMADESK_DEBUG") else logging.WARNING)
    root.addHandler(console)


def _model_file_as_option(argv: list[str]) -> list[str]:
    """`llamadesk path/to/model.gguf` (the desktop entry's `Exec=llamadesk %f`, a double-click on a
    .gguf file, "Open with") means `llamadesk --model path/to/model.gguf`."""
    if argv and not argv[0].startswith("-") and argv[0].lower().endswith(".gguf"):
        return ["--model", argv[0], *argv[1:]]
    return argv


# The exit status of a command whose reader closed the pipe (`python -m app conversations list | head -1`):
# 128 + SIGPIPE, what a shell reports for `cat` or `git log` in the same place.
PIPE_CLOSED = 141


def main(argv: list[str] | None = None) -> int:
    """Run the command; a closed stdout ends it quietly, as it ends other command-line tools.

    Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError; the recipe of
    Python's "Note on SIGPIPE": catch it here, for every command, and point stdout at devnull so
    the flush at exit cannot raise again. Output is flushed inside the try, not at exit."""
    try:
        try:
            return _main(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return PIPE_CLOSED


def _main(argv: list[str] | None) -> int:
    from app import paths

    paths.private_by_default()  # before any file exists: chats stay private (see app/paths.py)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(_model_file_as_option(argv))
    _set_up_logging()
    if args.command:
        from app import cli

        return cli.run(args)
    from app import gui

    return gui.run(model=args.model, self_test=args.self_test)


if __name__ == "__main__":
    sys.exit(main())
