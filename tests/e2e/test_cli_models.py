"""`python -m app models list | info` as a script runs them: a separate process, LLAMADESK_HOME=tmp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import assert_fails, assert_usage_error, run_cli
from tests.fixtures.gguf_files import write_split_llama, write_tiny_llama
from tests.fixtures.hostile_gguf import HOSTILE, bit_flipped_model, huge_block_count

MiB = 1024**2


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def models(home: Path) -> Path:
    folder = home / "data" / "models"  # paths.models_dir() under LLAMADESK_HOME
    folder.mkdir(parents=True)
    return folder


def test_list_shows_every_model_with_broken_ones_explained(home: Path, models: Path,
                                                           model_path: Path) -> None:
    tiny = write_tiny_llama(models / "tiny.gguf")
    parts = write_split_llama(models, "big", n_parts=2)
    (models / "notes.gguf").write_text("shopping list\n")
    result = run_cli(home, "models", "list")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(row) == 6 for row in rows)
    assert rows[0] == ["SmolLM2-135M-Instruct.Q4_1", "llama", "Q4_1", "98.4 MB", "8192", str(model_path)]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["tiny"] == ["tiny", "llama", "F32", "297.8 kB", "2048", str(tiny)]
    assert by_name["big"][1:3] == ["llama", "F32"] and by_name["big"][5] == str(parts[0])
    notes = by_name["notes"]
    assert notes[1].startswith("broken: notes.gguf is not a GGUF model file")
    assert notes[2] == notes[4] == "-" and notes[3] == "14 B"


def test_list_with_an_empty_library_shows_the_embedded_model(home: Path) -> None:
    result = run_cli(home, "models", "list")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1


def test_info_prints_header_facts_and_the_memory_estimate(home: Path, model_path: Path) -> None:
    result = run_cli(home, "models", "info", str(model_path))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["path"] == str(model_path)
    assert (info["architecture"], info["quantization"], info["layers"]) == ("llama", "Q4_1", 30)
    assert info["context_length"] == 8192 and info["has_chat_template"] is True
    assert info["parameters"] == 134_515_008 and info["license"] == "apache-2.0"
    memory = info["memory"]
    assert (memory["n_ctx"], memory["n_gpu_layers"], memory["vram_bytes"]) == (4096, 0, 0)
    assert memory["kv_ram"] == 90 * MiB
    assert memory["ram_bytes"] == memory["weights_ram"] + memory["kv_ram"] + memory["compute_ram"]
    assert memory["verdict"] in ("fits", "tight", "won't fit")
    # Speculative decoding by prompt lookup: the logits of 17 positions of a 49,152-token vocabulary.
    assert info["drafting"] == {"source": "prompt lookup", "note": "", "extra_ram_bytes": 17 * 49_152 * 4}


def test_info_of_a_short_context_model_uses_its_trained_length(home: Path, tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "tiny.gguf")  # trained for 2048 tokens
    info = json.loads(run_cli(home, "models", "info", str(path)).stdout)
    assert info["memory"]["n_ctx"] == 2048 and info["quantization"] == "F32"


def test_info_of_a_split_model_describes_all_parts(home: Path, tmp_path: Path) -> None:
    parts = write_split_llama(tmp_path, "big", n_parts=3)
    info = json.loads(run_cli(home, "models", "info", str(parts[0])).stdout)
    assert info["parts"] == [str(p) for p in parts]
    assert info["file_size"] == sum(p.stat().st_size for p in parts)


def test_info_of_bad_files_fails_with_the_reason(home: Path, tmp_path: Path, model_path: Path) -> None:
    notes = tmp_path / "notes.gguf"
    notes.write_text("shopping list\n")
    assert_fails(run_cli(home, "models", "info", str(notes)), "notes.gguf is not a GGUF model file")
    half = tmp_path / "half.gguf"
    half.write_bytes(model_path.read_bytes()[: 50_000_000])
    assert_fails(run_cli(home, "models", "info", str(half)), "half.gguf is incomplete")
    assert_fails(run_cli(home, "models", "info", str(tmp_path / "nowhere.gguf")), "does not exist")
    parts = write_split_llama(tmp_path, "holey", n_parts=3)
    parts[2].unlink()
    assert_fails(run_cli(home, "models", "info", str(parts[0])), "part 3", "is missing")


def test_models_usage_errors(home: Path) -> None:
    assert_usage_error(run_cli(home, "models"))
    assert_usage_error(run_cli(home, "models", "info"))
    assert_usage_error(run_cli(home, "models", "remove", "x"))
    assert_usage_error(run_cli(home, "models", "download", "only-a-repo"))


def test_download_puts_the_verified_file_in_the_library(home: Path, tmp_path: Path, fake_hub) -> None:
    import hashlib

    data = write_tiny_llama(tmp_path / "src.gguf").read_bytes()
    fake_hub.add_repo("someone/Tiny-GGUF", {"tiny-Q8_0.gguf": data})
    result = run_cli(home, "models", "download", "someone/Tiny-GGUF", "tiny-Q8_0.gguf")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == home / "data" / "models" / "someone" / "Tiny-GGUF" / "tiny-Q8_0.gguf"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert "100.0% 297.8 kB of 297.8 kB" in result.stderr  # progress went to stderr
    listed = run_cli(home, "models", "list")
    assert str(path) in listed.stdout


def test_download_of_a_missing_file_fails_with_the_reason(home: Path, fake_hub) -> None:
    fake_hub.add_repo("someone/Tiny-GGUF", {"README.md": b"# nothing\n"})
    result = run_cli(home, "models", "download", "someone/Tiny-GGUF", "nope.gguf")
    assert result.returncode == 1 and result.stdout == ""
    assert "nope.gguf" in result.stderr and "not" in result.stderr.lower()
    assert not list((home / "data" / "models").glob("*.gguf"))


# Hostile headers (tests/fixtures/hostile_gguf.py): `models info` gave tracebacks or never returned.
CLI_HOSTILE = ["huge_block_count", "alignment_text", "alignment_zero", "deep_nesting", "huge_string",
               "huge_tensor_dims", "truncated_mid_entry", "duplicate_tokens"]


@pytest.mark.timeout(120)  # before the header checks, huge_block_count ran for ever
@pytest.mark.parametrize("name", CLI_HOSTILE)
def test_info_of_a_hostile_header_fails_in_one_line(name: str, home: Path, tmp_path: Path) -> None:
    make, _, words = HOSTILE[name]
    line = assert_fails(run_cli(home, "models", "info", str(make(tmp_path / f"{name}.gguf"))), words)
    assert "Traceback" not in line and "download" in line.lower()


def test_info_and_list_of_the_bit_flipped_model(home: Path, models: Path, model_path: Path) -> None:
    flipped = bit_flipped_model(model_path, models / "flipped.gguf")
    huge_block_count(models / "layers.gguf")
    assert_fails(run_cli(home, "models", "info", str(flipped)),
                 "token 2,382 of its vocabulary duplicates token 930 ('Ġred')", "Download the file again")
    result = run_cli(home, "models", "list")
    assert result.returncode == 0 and result.stderr == ""
    broken = {row[0]: row[1] for row in (line.split("\t") for line in result.stdout.splitlines())}
    assert broken["flipped"].startswith("broken: flipped.gguf is damaged: token 2,382")
    assert broken["layers"].startswith("broken: The header of layers.gguf is corrupt")
