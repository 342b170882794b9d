"""The bundle's entry point (PyInstaller runs this script): Llamadesk's command line."""

import multiprocessing
import sys

from app.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless something starts a process (Windows, macOS)
    sys.exit(main())
