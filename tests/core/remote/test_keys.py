"""Where keys are kept: the private file (0600 from its first byte) and the choice of the keyring.

The keyring is the OS's edge: its choice is tested with keyring's own backends (fail, null, an
empty chain) and a small in-memory KeyringBackend standing in for the system's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError, PasswordDeleteError

from app import paths
from app.core.common import atomic_file, settings_file
from app.core.remote import keys
from app.core.remote.keys import FILE_NAME, FileKeyStore, KeyringStore, KeyStoreError, check_key, key_store

SECRET = "sk-test-5f1e2d3c4b5a"


class MemoryKeyring(KeyringBackend):
    """A working keyring in memory; not `viable`, so keyring's own discovery never picks it."""

    priority = 5
    viable = False

    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}
        self.broken = broken

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.broken:
            raise KeyringError(f"cannot store {password}")  # a backend that quotes what it was given
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / FILE_NAME)


def test_the_file_keeps_keys_by_connection_name(store: FileKeyStore) -> None:
    assert store.get("gpu") == ""
    store.set("gpu", SECRET)
    store.set("cluster", "other")
    assert (store.get("gpu"), FileKeyStore(store.path).get("cluster")) == (SECRET, "other")
    store.delete("gpu")
    store.delete("never there")
    assert (store.get("gpu"), store.get("cluster")) == ("", "other")
    assert store.where == f"a private file ({store.path}, mode 0600)"


def test_the_file_is_private_from_its_first_byte_whatever_the_umask(store: FileKeyStore, monkeypatch) -> None:
    """Every write goes to a temporary file that is 0600 before anything is written to it, then
    replaces the old one: at no moment can another user open the keys."""
    modes: list[int] = []
    real_replace = os.replace

    def replace(source, target):
        modes.append(stat.S_IMODE(os.stat(source).st_mode))
        real_replace(source, target)

    monkeypatch.setattr(atomic_file.os, "replace", replace)
    previous = os.umask(0)
    try:
        store.set("gpu", SECRET)
        store.set("cluster", SECRET)
        store.delete("gpu")
    finally:
        os.umask(previous)
    assert modes == [0o600, 0o600, 0o600] and mode(store.path) == 0o600


def test_a_damaged_key_file_is_set_aside_privately_and_the_notice_holds_no_key(store: FileKeyStore) -> None:
    store.set("gpu", SECRET)
    store.path.write_text(store.path.read_text()[:-3])  # cut short
    assert store.get("gpu") == ""
    bad = store.path.with_name(f"{FILE_NAME}.bad")
    assert SECRET in bad.read_text() and mode(bad) == 0o600
    notices = settings_file.take_notices()
    assert len(notices) == 1 and "invalid JSON" in notices[0] and SECRET not in notices[0]


def test_a_key_must_fit_an_http_header_and_is_not_quoted_when_refused() -> None:
    assert check_key(f"  {SECRET}\n") == SECRET
    for wrong in ("sk two words", "sk-ключ", "sk\x00x"):
        with pytest.raises(KeyStoreError) as refused:
            check_key(wrong)
        assert wrong not in refused.value.message


def test_the_keyring_is_used_when_usable_and_llamadesk_home_is_unset(monkeypatch) -> None:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    monkeypatch.delenv(paths.HOME_ENV)
    store = key_store()
    assert isinstance(store, KeyringStore) and store.where.startswith("the system keyring (")
    store.set("gpu", SECRET)
    assert backend.secrets == {("Llamadesk", "gpu"): SECRET} and store.get("gpu") == SECRET
    store.delete("gpu")
    store.delete("gpu")  # none there: nothing to say
    assert store.get("gpu") == ""


def test_under_llamadesk_home_the_keys_stay_in_its_folder(monkeypatch, llamadesk_home: Path) -> None:
    monkeypatch.setattr(keyring, "get_keyring", MemoryKeyring)
    store = key_store()
    assert isinstance(store, FileKeyStore) and store.path.is_relative_to(llamadesk_home.resolve())


@pytest.mark.parametrize("unusable", [fail.Keyring, null.Keyring, chainer.ChainerBackend])
def test_without_a_usable_keyring_the_keys_go_to_the_private_file(monkeypatch, tmp_path: Path,
                                                                   unusable) -> None:
    monkeypatch.setattr(keyring, "get_keyring", unusable)
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])  # a chain with nothing in it
    monkeypatch.delenv(paths.HOME_ENV)
    monkeypatch.setattr(paths, "config_dir", lambda: tmp_path)
    store = key_store()
    assert isinstance(store, FileKeyStore) and store.path == tmp_path / FILE_NAME


def test_a_keyring_that_fails_to_load_leaves_the_file(monkeypatch, tmp_path: Path) -> None:
    def broken():
        raise RuntimeError("D-Bus is gone")

    monkeypatch.setattr(keyring, "get_keyring", broken)
    monkeypatch.delenv(paths.HOME_ENV)
    monkeypatch.setattr(paths, "config_dir", lambda: tmp_path)
    assert isinstance(key_store(), FileKeyStore)


def test_a_keyring_failure_is_said_without_the_key(caplog) -> None:
    store = KeyringStore(MemoryKeyring(broken=True))
    with pytest.raises(KeyStoreError) as failed:
        store.set("gpu", SECRET)
    assert "could not store the key of the connection “gpu”" in failed.value.message
    assert SECRET not in failed.value.message and SECRET not in caplog.text
    assert keys.SERVICE == "Llamadesk"
