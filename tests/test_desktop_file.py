"""Linux desktop integration: the .desktop file validates, the GGUF MIME type is declared, and
packaging/linux/install.sh puts the app, menu entry, icons and MIME type in the user's XDG places
and removes exactly those again.

Needs desktop-file-validate (Debian: desktop-file-utils) and update-mime-database
(shared-mime-info); a missing tool fails the test with the package to install.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINUX = REPO / "packaging" / "linux"
DESKTOP = LINUX / "llamadesk.desktop"
MIME = LINUX / "llamadesk-gguf.xml"
INSTALL = LINUX / "install.sh"
ICONS = REPO / "resources" / "icons"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="freedesktop integration is Linux's")


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: it comes with Debian's {package} package "
                    f"(apt-get install {package}).")
    return path


def desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


@linux_only
def test_the_desktop_file_validates() -> None:
    result = subprocess.run([tool("desktop-file-validate", "desktop-file-utils"), str(DESKTOP)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_desktop_file_opens_gguf_files_with_the_icon() -> None:
    entry = desktop_entry(DESKTOP)
    assert entry["Type"] == "Application" and entry["Name"] == "Llamadesk"
    assert entry["Exec"] == "llamadesk %f"  # install.sh puts the installed path in
    assert entry["Icon"] == "llamadesk" and entry["Terminal"] == "false"
    assert "application/x-gguf" in entry["MimeType"].split(";")
    for size in ICON_SIZES:
        png = ICONS / "hicolor" / f"{size}x{size}" / "apps" / "llamadesk.png"
        head = png.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n", png
        assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == (size, size), png
    assert (ICONS / "llamadesk.svg").is_file()
    assert (ICONS / "llamadesk.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    assert (ICONS / "llamadesk.icns").read_bytes()[:4] == b"icns"


def test_the_mime_type_matches_gguf_files_by_name_and_magic() -> None:
    [mime_type] = ET.parse(MIME).getroot().findall(f"{MIME_NS}mime-type")
    assert mime_type.get("type") == "application/x-gguf"
    assert [g.get("pattern") for g in mime_type.findall(f"{MIME_NS}glob")] == ["*.gguf"]
    [match] = mime_type.findall(f"{MIME_NS}magic/{MIME_NS}match")
    assert (match.get("type"), match.get("value"), match.get("offset")) == ("string", "GGUF", "0")


# ------------------------------------------------------------------------------- install.sh


def fake_bundle(root: Path) -> Path:
    """A tiny stand-in for dist/llamadesk: an executable that prints its arguments."""
    bundle = root / "llamadesk"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "_internal" / "payload.txt").write_text("bundle payload\n")
    exe = bundle / "llamadesk"
    exe.write_text('#!/bin/sh\necho "fake llamadesk $*"\n')
    exe.chmod(0o755)
    return bundle


def run_install(*args: str, home: Path, data: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(data), XDG_BIN_HOME=str(bin_dir))
    return subprocess.run(["sh", str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=120)


@linux_only
def test_install_puts_everything_in_the_xdg_places_and_uninstall_removes_exactly_that(tmp_path: Path) -> None:
    validate = tool("desktop-file-validate", "desktop-file-utils")
    tool("update-mime-database", "shared-mime-info")
    home, data = tmp_path / "home", tmp_path / "home dir" / "share"  # a space in the path
    bin_dir = home / ".local" / "bin"
    bundle = fake_bundle(tmp_path / "dist")
    # Things that are not ours and must survive: the user's conversations, other apps.
    user_data = data / "Llamadesk" / "conversations.sqlite3"
    other_entry = data / "applications" / "other.desktop"
    other_icon = data / "icons" / "hicolor" / "48x48" / "apps" / "other.png"
    for path in (user_data, other_entry, other_icon):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not Llamadesk's")

    result = run_install("--bundle", str(bundle), home=home, data=data, bin_dir=bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    app_dir = data / "llamadesk"
    assert (app_dir / "_internal" / "payload.txt").read_text() == "bundle payload\n"
    launcher = bin_dir / "llamadesk"
    assert launcher.is_symlink() and launcher.resolve() == (app_dir / "llamadesk").resolve()
    ran = subprocess.run([str(launcher), "x.gguf"], capture_output=True, text=True)
    assert ran.stdout == "fake llamadesk x.gguf\n"
    entry_file = data / "applications" / "llamadesk.desktop"
    entry = desktop_entry(entry_file)
    assert entry["Exec"] == f'"{app_dir / "llamadesk"}" %f'
    assert entry["TryExec"] == str(app_dir / "llamadesk")
    check = subprocess.run([validate, str(entry_file)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for size in ICON_SIZES:
        name = Path(f"{size}x{size}", "apps", "llamadesk.png")
        assert (data / "icons" / "hicolor" / name).read_bytes() == (ICONS / "hicolor" / name).read_bytes()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "llamadesk.svg").is_file()
    assert (data / "mime" / "packages" / "llamadesk-gguf.xml").read_bytes() == MIME.read_bytes()
    # The MIME database knows .gguf files now (name and magic).
    assert "application/x-gguf:*.gguf" in (data / "mime" / "globs2").read_text()
    assert b"application/x-gguf" in (data / "mime" / "magic").read_bytes()
    assert (data / "mime" / "application" / "x-gguf.xml").is_file()

    # Installing again (an update) replaces the bundle and lists each file once.
    (bundle / "_internal" / "payload.txt").write_text("new payload\n")
    again = run_install("--bundle", str(bundle), home=home, data=data, bin_dir=bin_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (app_dir / "_internal" / "payload.txt").read_text() == "new payload\n"
    listed = (app_dir / ".install-manifest").read_text().splitlines()[1:]
    assert len(listed) == len(set(listed)) == 1 + 1 + len(ICON_SIZES) + 1 + 1

    removed = run_install("--uninstall", home=home, data=data, bin_dir=bin_dir)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not app_dir.exists() and not os.path.lexists(launcher) and not entry_file.exists()
    for path in listed:
        assert not os.path.lexists(path), path
    assert not (data / "icons" / "hicolor" / "16x16").exists()  # emptied folders go too
    assert "gguf" not in (data / "mime" / "globs2").read_text()  # the database forgot the type
    assert not (data / "mime" / "application" / "x-gguf.xml").exists()
    for path in (user_data, other_entry, other_icon):
        assert path.read_text() == "not Llamadesk's", path
    # Nothing left to remove: a second uninstall says so and succeeds.
    assert run_install("--uninstall", home=home, data=data, bin_dir=bin_dir).returncode == 0


@linux_only
def test_install_refuses_to_overwrite_a_folder_it_did_not_create(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "share"
    foreign = data / "llamadesk" / "notes.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("mine")
    result = run_install("--bundle", str(fake_bundle(tmp_path / "dist")), home=home, data=data,
                         bin_dir=home / "bin")
    assert result.returncode == 1
    assert "not installed by this script" in result.stderr
    assert foreign.read_text() == "mine"
    assert not (home / "bin" / "llamadesk").exists()
    assert run_install("--uninstall", home=home, data=data, bin_dir=home / "bin").returncode == 0
    assert foreign.read_text() == "mine"


@linux_only
def test_install_without_a_bundle_says_how_to_build_one(tmp_path: Path) -> None:
    result = run_install("--bundle", str(tmp_path / "nothing"), home=tmp_path, data=tmp_path / "share",
                         bin_dir=tmp_path / "bin")
    assert result.returncode == 1 and "no bundle folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_install("--bundle", str(empty), home=tmp_path, data=tmp_path / "share",
                         bin_dir=tmp_path / "bin")
    assert result.returncode == 1 and "build_bundle.py" in result.stderr
