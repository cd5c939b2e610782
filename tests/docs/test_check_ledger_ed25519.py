"""docs/check_ledger.py verifies the log's checkpoint signatures with its own, standard-library
Ed25519 (ed25519_verify), so that a monitor needs nothing installed. Its verdicts must be
OpenSSL's, reached here through the `cryptography` package: an implementation not written here.
They agree on the RFC 8032 §7.1 vectors, on random keys and messages and single bit flips of
each, on S >= L (refused: it would make signatures malleable), and on the encodings where
implementations differ: non-canonical keys and R (y >= p, x = 0 with the sign bit set), points
not on the curve, small-order keys and R, and keys with a small-order component, where OpenSSL's
cofactorless check accepts some forged signatures and ed25519_verify must accept the same ones."""

import hashlib
import importlib.util
import random
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_spec = importlib.util.spec_from_file_location(
    "check_ledger", Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
)
check_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_ledger)
ed25519_verify = check_ledger.ed25519_verify

# Written out again rather than taken from the script, so that a wrong constant there shows.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493


def ossl_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """OpenSSL's verdict; a key that fails to load counts as refused."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


def raw_public(priv: Ed25519PrivateKey) -> bytes:
    return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def k_of(r: bytes, pk: bytes, msg: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + pk + msg).digest(), "little") % L


def scalar_and_point(seed: bytes) -> tuple[int, bytes]:
    """The secret scalar a of the key with this seed (RFC 8032 §5.1.5) and [a]B, computed by
    OpenSSL: test inputs built without the script's point arithmetic."""
    a = int.from_bytes(hashlib.sha512(seed).digest()[:32], "little")
    a = a & ((1 << 254) - 8) | 1 << 254
    return a, raw_public(Ed25519PrivateKey.from_private_bytes(seed))


def short(value: object) -> str | None:
    """Test ids for 32-byte encodings: their first and last two bytes."""
    return f"{value[:2].hex()}..{value[-2:].hex()}" if isinstance(value, bytes) else None


def test_constants() -> None:
    assert (check_ledger._ED_P, check_ledger._ED_L) == (P, L)
    assert check_ledger._ed_encode(check_ledger._ED_B) == le(4 * pow(5, -1, P) % P)


# RFC 8032 §7.1, TEST 1-3: (secret key, public key, message, signature).
RFC_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        (
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        (
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        (
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
            "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ),
]


@pytest.mark.parametrize("sk, pk, msg, sig", RFC_VECTORS, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(sk: str, pk: str, msg: str, sig: str) -> None:
    sk_b, pk_b, msg_b, sig_b = (bytes.fromhex(h) for h in (sk, pk, msg, sig))
    priv = Ed25519PrivateKey.from_private_bytes(sk_b)
    assert raw_public(priv) == pk_b  # catches a typo in the key
    assert priv.sign(msg_b) == sig_b  # signing is deterministic: catches a typo in the signature
    assert ossl_verify(pk_b, sig_b, msg_b)
    assert ed25519_verify(pk_b, sig_b, msg_b)
    assert not ossl_verify(pk_b, sig_b, msg_b + b"\0")
    assert not ed25519_verify(pk_b, sig_b, msg_b + b"\0")


@pytest.mark.parametrize("seed", range(100))
def test_random_and_bit_flips(seed: int) -> None:
    rng = random.Random(seed)
    priv = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    pk, msg = raw_public(priv), rng.randbytes(rng.randint(0, 300))
    sig = priv.sign(msg)
    assert ed25519_verify(pk, sig, msg)

    def flip(b: bytes) -> bytes:
        i = rng.randrange(8 * len(b))
        return (int.from_bytes(b, "little") ^ (1 << i)).to_bytes(len(b), "little")

    cases = [(pk, flip(sig), msg), (flip(pk), sig, msg)]
    cases.append((pk, sig, flip(msg) if msg else b"\0"))
    # S + L (< 2^256) is the same scalar mod L: accepting it would make signatures malleable.
    s = int.from_bytes(sig[32:], "little")
    cases += [(pk, sig[:32] + le(bad_s), msg) for bad_s in (s + L, L, 2**256 - 1)]
    for case in cases:
        assert ossl_verify(*case) is False
        assert ed25519_verify(*case) is False


# Small-order points (the 8-torsion subgroup), with their orders.
IDENTITY = le(1)
TORSION = {
    IDENTITY: 1,
    le(P - 1): 2,  # (0, -1)
    le(0): 4,  # (sqrt(-1), 0) with x even: also the all-zero key
    le(1 << 255): 4,  # its negative, x odd
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"): 8,
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"): 8,
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"): 8,
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"): 8,
}
# Keys that RFC 8032 would refuse to decode but OpenSSL accepts (y reduced mod p; x = 0 with
# the sign bit set), each with the small-order point it stands for.
LAX_KEYS = {
    le(1 | 1 << 255): 1,  # identity, x = 0 with sign bit
    le(P + 1): 1,  # identity, y = p + 1
    le(P + 1 | 1 << 255): 1,
    le(P - 1 | 1 << 255): 2,  # (0, -1) with sign bit
    le(P): 4,  # y = p, i.e. y = 0
    le(P | 1 << 255): 4,
}


def forge_s0(pk: bytes, order: int, r: bytes = IDENTITY) -> tuple[bytes, bytes]:
    """(signature, message) with S = 0 and R = r that passes [S]B == R + [k]A for small-order A
    when [k]A is the identity, i.e. order divides k: found by trying messages."""
    for i in range(1000):
        msg = b"forged %d" % i
        if k_of(r, pk, msg) % order == 0:
            return r + bytes(32), msg
    raise AssertionError("no message found")


@pytest.mark.parametrize("pk, order", [*TORSION.items(), *LAX_KEYS.items()], ids=short)
def test_small_order_and_noncanonical_keys(pk: bytes, order: int) -> None:
    # Cofactorless OpenSSL accepts small-order (and non-canonical) keys: S = 0, R = identity
    # "signs" any message whose k is a multiple of the key's order.
    sig, msg = forge_s0(pk, order)
    assert ossl_verify(pk, sig, msg) is True
    assert ed25519_verify(pk, sig, msg) is True
    # The same signature with S + L, or for a message whose k is not a multiple: refused.
    cases = [(pk, sig[:32] + le(L), msg)]
    if order > 1:
        msg2 = next(m for m in (b"x%d" % i for i in range(100)) if k_of(IDENTITY, pk, m) % order)
        cases.append((pk, sig, msg2))
    # A real signature from another key: refused.
    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    cases.append((pk, priv.sign(b"hello"), b"hello"))
    for case in cases:
        assert ossl_verify(*case) is False
        assert ed25519_verify(*case) is False


def test_noncanonical_key_y() -> None:
    # Every key with p <= y < 2^255, both sign bits: OpenSSL reduces y mod p, and the verdicts
    # must agree whatever comes of it (no point, a small-order point, a point of large order).
    # Only y = p (y = 0, order 4) and y = p + 1 (the identity) let S = 0 forge; a real
    # signature by another key never passes.
    real = Ed25519PrivateKey.from_private_bytes(bytes(32)).sign(b"m")
    accepted = set()
    for y in range(P, 2**255):
        for sign in (0, 1):
            pk = le(y | sign << 255)
            for sig, msg in (forge_s0(pk, 8), (real, b"m")):
                verdict = ed25519_verify(pk, sig, msg)
                assert verdict == ossl_verify(pk, sig, msg), (y - P, sign, sig == real)
                if verdict:
                    accepted.add((y - P, sign, sig == real))
    assert accepted == {(0, 0, False), (0, 1, False), (1, 0, False), (1, 1, False)}


@pytest.mark.parametrize(
    "r",
    [
        le(P + 1),  # identity with y = p + 1
        le(1 | 1 << 255),  # identity with x = 0 and sign bit set
        le(P + 1 | 1 << 255),
        le(2),  # y = 2 is not on the curve
    ],
    ids=short,
)
def test_noncanonical_r_refused(r: bytes) -> None:
    # With A = identity and S = 0, [S]B - [k]A is the identity, so only R = 01 00..00 matches:
    # OpenSSL compares R's bytes with the canonical encoding, so other encodings are refused.
    sig, msg = forge_s0(IDENTITY, 1, r)
    assert ossl_verify(IDENTITY, sig, msg) is False
    assert ed25519_verify(IDENTITY, sig, msg) is False
    good = IDENTITY + sig[32:]
    assert ossl_verify(IDENTITY, good, msg) is True
    assert ed25519_verify(IDENTITY, good, msg) is True


@pytest.mark.parametrize(
    "r, expected", [(le(P - 1), True), (le(P - 1 | 1 << 255), False)], ids=short
)
def test_small_order_r(r: bytes, expected: bool) -> None:
    # A = (0, -1) of order 2, S = 0, k odd: [S]B - [k]A = (0, -1), so R = (0, -1) is accepted
    # (no small-order check on R), and its encoding with the sign bit set is refused.
    pk = le(P - 1)
    msg = next(m for m in (b"odd %d" % i for i in range(100)) if k_of(r, pk, m) % 2)
    sig = r + bytes(32)
    assert ossl_verify(pk, sig, msg) is expected
    assert ed25519_verify(pk, sig, msg) is expected


@pytest.mark.parametrize("torsion, order", [t for t in TORSION.items() if t[1] > 1], ids=short)
def test_mixed_order_keys(torsion: bytes, order: int) -> None:
    # Key A' = [a]B + T with T of small order, signed "honestly" with A' in the hash:
    # S = r + k*a. Then [S]B - [k]A' = [r]B - [k]T, so with R = [r]B a cofactorless verifier
    # accepts iff [k]T is the identity (order divides k), and with R = [r]B + T iff [k + 1]T is;
    # a cofactored verifier would accept all. Three accepted and three refused cases of each.
    t_pt = check_ledger._ed_decode(torsion)
    a, a_enc = scalar_and_point(hashlib.sha256(b"mixed-key " + torsion).digest())
    pk = check_ledger._ed_encode(check_ledger._ed_add(check_ledger._ed_decode(a_enc), t_pt))
    wanted = {(plus_t, expected): 3 for plus_t in (0, 1) for expected in (True, False)}
    cases = []
    for i in range(1000):
        if not any(wanted.values()):
            break
        msg = b"mixed %d" % i
        r, r_enc = scalar_and_point(hashlib.sha256(msg).digest())
        for plus_t in (0, 1):
            if plus_t:
                r_enc = check_ledger._ed_encode(
                    check_ledger._ed_add(check_ledger._ed_decode(r_enc), t_pt)
                )
            k = k_of(r_enc, pk, msg)
            expected = (k + plus_t) % order == 0
            if wanted[plus_t, expected]:
                wanted[plus_t, expected] -= 1
                cases.append((r_enc + le((r + k * a) % L), msg, expected))
    assert not any(wanted.values())
    for sig, msg, expected in cases:
        assert ossl_verify(pk, sig, msg) is expected
        assert ed25519_verify(pk, sig, msg) is expected


def test_lengths_and_types() -> None:
    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pk, msg = raw_public(priv), b"msg"
    sig = priv.sign(msg)
    assert ed25519_verify(pk, sig, msg)
    assert ed25519_verify(bytearray(pk), memoryview(sig), bytearray(msg))
    for bad_pk in (pk[:31], pk + b"\0", b"", 32, None, "a" * 32, list(pk)):
        assert ed25519_verify(bad_pk, sig, msg) is False  # type: ignore[arg-type]
    for bad_sig in (sig[:63], sig + b"\0", b"", 64, None, sig.hex(), list(sig)):
        assert ed25519_verify(pk, bad_sig, msg) is False  # type: ignore[arg-type]
    for bad_msg in ("msg", 3, None, [109, 115, 103]):
        assert ed25519_verify(pk, sig, bad_msg) is False  # type: ignore[arg-type]
    released = memoryview(sig)
    released.release()
    assert ed25519_verify(pk, released, msg) is False
