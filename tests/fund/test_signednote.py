"""Signed notes and checkpoints (fund/signednote.py) against the example key and note of Go's
golang.org/x/mod/sumdb/note, the implementation C2SP signed-note was written from (Ed25519 is
deterministic, so signing its text with its key must give its note byte for byte); forgeries
are refused."""

import base64

import pytest

from fund.signednote import Checkpoint, NoteError, Signer, Verifier, checkpoint_open, note_open

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
NOTE = (
    TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_gos_example_key_and_note_byte_for_byte():
    signer = Signer.from_skey(SKEY)
    assert signer.verifier.vkey == VKEY and signer.skey == SKEY
    assert signer.sign(TEXT) == NOTE
    assert note_open(NOTE, Verifier.from_vkey(VKEY)) == TEXT


def test_a_new_key_signs_a_checkpoint_that_opens_with_its_vkey_only():
    signer = Signer.generate("fund.example/log")
    checkpoint = Checkpoint("fund.example/log/USDT", 42, bytes(range(32)))
    note = signer.sign(checkpoint.text())
    assert note.startswith(
        "fund.example/log/USDT\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n"
    )
    verifier = Verifier.from_vkey(signer.verifier.vkey)
    assert checkpoint_open(note, verifier, "fund.example/log/USDT") == checkpoint
    with pytest.raises(NoteError, match="not of"):
        checkpoint_open(note, verifier, "fund.example/log/USDC")
    with pytest.raises(NoteError, match="not signed by"):
        checkpoint_open(note, Signer.generate("fund.example/log").verifier, "fund.example/log/USDT")
    # Another key's signature beside ours is ignored; ours still verifies.
    both = note + Signer.generate("witness.example").sign(checkpoint.text()).split("\n\n")[1]
    assert checkpoint_open(both, verifier, "fund.example/log/USDT") == checkpoint


@pytest.mark.parametrize(
    "forged",
    [
        NOTE.replace("cryptography", "cryptographY"),  # the text changed
        NOTE.replace("x08go", "x08gp"),  # the signature changed
        NOTE.replace("— PeterNeumann", "— PeterNeuman"),  # another name: no signature of ours
        NOTE.replace("\n\n—", "\n—"),  # no blank line
        NOTE.replace("— ", "-- "),  # not a signature line
        NOTE + "\n",  # a trailing blank line
        NOTE.replace("is.\n", "is.\x07\n"),  # a control character
        TEXT,  # no signature at all
        NOTE[:-1],  # no final newline
        NOTE.replace("x08go/", "x08go"),  # not base64
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # too short
        TEXT + "\n" + "— X AAAAAAA=\n" * 17,  # too many signatures
    ],
)
def test_forged_or_malformed_notes_are_refused(forged):
    with pytest.raises(NoteError):
        note_open(forged, Verifier.from_vkey(VKEY))


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # another id
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # truncated
        "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not Ed25519
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # a space
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case id
        "PeterNeumann+c74f20a3",
        "",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey):
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "text",
    [
        "o\n42\n",  # no root
        "o\n042\n" + base64.b64encode(bytes(32)).decode() + "\n",  # a leading zero
        "o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",  # 31 bytes
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",  # no origin
        "o\n1\n" + base64.b64encode(bytes(32)).decode(),  # no final newline
    ],
)
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_the_command_makes_a_key_file_for_its_owner_and_prints_the_vkey(tmp_path):
    import io
    import stat

    from django.core.management import CommandError, call_command

    out, path = io.StringIO(), tmp_path / "log.key"
    call_command("log_keygen", "fund.example/log", "--out", str(path), stdout=out)
    signer = Signer.from_skey(path.read_text())
    assert out.getvalue().strip() == signer.verifier.vkey
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("log_keygen", "fund.example/log", "--out", str(path))
    assert Signer.from_skey(path.read_text()).skey == signer.skey
    with pytest.raises(CommandError, match="key name"):
        call_command("log_keygen", "a b", "--out", str(tmp_path / "other.key"))


def test_log_keygen_makes_the_key_the_settings_already_name(tmp_path):
    """As make demo does on a fresh clone: LOG_SIGNING_KEY_FILE names the file it is to make,
    and the system checks (which refuse a missing key file) do not stop it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    key = tmp_path / "log.key"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LOG_SIGNING_KEY_FILE": str(key), "LOG_SIGNING_KEY": ""}
    made = subprocess.run(
        [sys.executable, "manage.py", "log_keygen", "127.0.0.1:8000/log", "--out", str(key)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("127.0.0.1:8000/log+")
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
