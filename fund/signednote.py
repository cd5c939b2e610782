"""Signed notes (C2SP signed-note) with Ed25519 keys, and the checkpoints (C2SP tlog-checkpoint)
they carry: the formats Go's checksum database, Sigstore and the witness network read.

    note       = text ending in a newline, a blank line, then signature lines
    signature  = "— " key name " " base64(key id (4 bytes, big-endian) ‖ Ed25519 signature)
    key id     = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]
    vkey       = key name "+" 8 hex digits of the key id "+" base64(0x01 ‖ public key)
    skey       = "PRIVATE+KEY+" key name "+" key id "+" base64(0x01 ‖ 32-byte seed)
    checkpoint = origin "\\n" tree size (decimal) "\\n" base64(root hash) "\\n" [extension lines]

A key name is non-empty and holds no space and no "+". The private key (skey) is read from a
file or a variable by whoever signs, never kept in the database.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
SIGNATURE_PREFIX = "— "  # em dash, space
MAX_SIGNATURES = 16  # the spec's minimum a verifier must accept; more are refused
_NAME = re.compile(r"[^\s+]+")  # no Unicode space, no plus
_ORIGIN = re.compile(r"[^\x00-\x20]+[^\x00-\x1f]*")


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify."""


def key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NoteError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not base64") from None


@dataclass(frozen=True)
class Verifier:
    name: str
    id: int
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> "Verifier":
        """Reads `name+keyid+base64(0x01 ‖ key)`; the key id must be the key's own."""
        parts = vkey.strip().split("+", 2)  # base64 may hold "+" itself
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise NoteError("a verifier key reads name+8 hex digits+base64 key")
        name, hex_id, material = _check_name(parts[0]), parts[1], _b64decode(parts[2], "the key")
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("the verifier key is not an Ed25519 key")
        if key_id(name, material[1:]) != int(hex_id, 16):
            raise NoteError("the verifier key's id is not its key's")
        return cls(name, int(hex_id, 16), Ed25519PublicKey.from_public_bytes(material[1:]))

    @property
    def vkey(self) -> str:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}+{self.id:08x}+{base64.b64encode(bytes([ED25519]) + raw).decode()}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> "Signer":
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> "Signer":
        """Reads `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)` (Go's note format)."""
        parts = skey.strip().split("+", 4)  # base64 may hold "+" itself
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key reads PRIVATE+KEY+name+keyid+base64 key")
        name, material = _check_name(parts[2]), _b64decode(parts[4], "the key")
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("the signer key is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(material[1:]))
        if parts[3] != f"{signer.verifier.id:08x}":
            raise NoteError("the signer key's id is not its key's")
        return signer

    @property
    def skey(self) -> str:
        seed = self.private_key.private_bytes_raw()
        material = base64.b64encode(bytes([ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id:08x}+{material}"

    @property
    def verifier(self) -> Verifier:
        public = self.private_key.public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, key_id(self.name, raw), public)

    def sign(self, text: str) -> str:
        """The signed note of `text` (which must end in a newline)."""
        body = _checked_text(text).encode()
        blob = self.verifier.id.to_bytes(4, "big") + self.private_key.sign(body)
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


def _checked_text(text: str) -> str:
    if not text.endswith("\n"):
        raise NoteError("a note's text ends in a newline")
    if re.search(r"[\x00-\x09\x0b-\x1f]", text):
        raise NoteError("a note holds no control character but newlines")
    return text


def note_open(note: str, verifier: Verifier) -> str:
    """The text of `note` once `verifier`'s signature on it is checked; NoteError when the note
    is malformed, carries no signature of that key, or a signature of that key fails."""
    if len(note.encode()) > 1_000_000:
        raise NoteError("the note is too large")
    _checked_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a note's signatures follow a blank line")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note carries 1 to {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise NoteError(f"not a signature line: {line[:80]!r}")
        name, blob = line[len(SIGNATURE_PREFIX) :].split(" ")
        blob = _b64decode(blob, "a signature")
        if len(blob) < 5:
            raise NoteError("a signature is too short")
        if name != verifier.name or int.from_bytes(blob[:4], "big") != verifier.id:
            continue  # another key's: ignored, as the spec says
        if not verifier.verify(text.encode(), blob[4:]):
            raise NoteError(f"the signature of {name} does not verify")
        verified = True
    if not verified:
        raise NoteError(f"the note is not signed by {verifier.name}+{verifier.id:08x}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint reads origin, size and root hash, one a line")
        origin, size, root, *extensions = lines[:-1]
        if not _ORIGIN.fullmatch(origin):
            raise NoteError("a checkpoint's origin is a non-empty line")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size):
            raise NoteError("a checkpoint's tree size is a decimal number")
        root_hash = _b64decode(root, "the root hash")
        if len(root_hash) != 32:
            raise NoteError("the root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise NoteError("a checkpoint's extension lines are not empty")
        return cls(origin, int(size), root_hash, tuple(extensions))


def checkpoint_open(note: str, verifier: Verifier, origin: str) -> Checkpoint:
    """The checkpoint of a signed note, its signature and origin checked."""
    checkpoint = Checkpoint.parse(note_open(note, verifier))
    if checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of {checkpoint.origin!r}, not of {origin!r}")
    return checkpoint
