"""Build the double-click app: a one-folder PyInstaller bundle at dist/llamadesk/.

    .venv/bin/python packaging/build_bundle.py [--with-model] [--dist DIR] [--work DIR]

Runs PyInstaller on packaging/llamadesk.spec with this Python (the .venv, where PyInstaller is
installed by `pip install -e .[test]` or `pip install pyinstaller`), then prints the bundle's
size on disk and the build time. The executable is <dist>/llamadesk/llamadesk (llamadesk.exe on
Windows); on macOS there is also <dist>/Llamadesk.app.

--with-model puts the embedded default model (98 MB) into the bundle, for an offline build that
works out of the box; without it the app uses the model the user has or downloads.
PyInstaller's work files stay in build/pyinstaller (or --work), so a rebuild is faster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "llamadesk.spec"


def tree_size(path: Path) -> int:
    """Bytes on disk, each file once (hard links) and links not followed, like `du -s`."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total


def executable(dist: Path) -> Path:
    return dist / "llamadesk" / ("llamadesk.exe" if os.name == "nt" else "llamadesk")


def build(dist: Path, work: Path, with_model: bool = False, quiet: bool = False) -> Path:
    """Run PyInstaller; returns the bundle's executable. Raises CalledProcessError on failure."""
    env = dict(os.environ)
    env["LLAMADESK_WITH_MODEL"] = "1" if with_model else ""
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(dist),
           "--workpath", str(work), "--log-level", "WARN" if quiet else "INFO", str(SPEC)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return executable(dist)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-model", action="store_true",
                        help="include the embedded default model (98 MB) in the bundle")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work folder (default: build/pyinstaller)")
    parser.add_argument("--quiet", action="store_true", help="only PyInstaller's warnings")
    args = parser.parse_args(argv)
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        print(f"PyInstaller is not installed in {sys.prefix}: {sys.executable} -m pip install "
              "'pyinstaller>=6'", file=sys.stderr)
        return 1
    start = time.monotonic()
    try:
        exe = build(args.dist.resolve(), args.work.resolve(), args.with_model, args.quiet)
    except subprocess.CalledProcessError as error:
        print(f"PyInstaller failed (exit {error.returncode}).", file=sys.stderr)
        return 1
    seconds = time.monotonic() - start
    bundle = exe.parent
    size = tree_size(bundle)
    print(f"bundle: {bundle} ({size / 1e6:.1f} MB = {size / 2**20:.0f} MiB on disk"
          f"{', with the default model' if args.with_model else ''})")
    print(f"executable: {exe}")
    print(f"build time: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
