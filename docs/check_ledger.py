#!/usr/bin/env python3
"""Check an insurance fund's published books from its public API, with Python's standard library
only (docs/rules.md §6 has every canonical form). Four checks:

    python3 check_ledger.py https://fund.example.com USDT

fetches every record of the fund, recomputes the hash chain and the running balance, names the
first record that does not match, and compares the records with the fund's signed checkpoint:
they must give its Merkle root.

    python3 check_ledger.py --monitor STATE https://fund.example.com [--vkey VKEY] [--asset USDT]

the monitor: pins the site's verifier key (give it with --vkey; otherwise the one the site serves
now is pinned, with a warning), keeps in STATE the last checkpoint it verified of each fund and, on
each run, checks the new checkpoint's signature and origin, the consistency proof from the kept
one (a few dozen hashes) and one record's inclusion. A rewritten history is named: "checkpoint of
size N does not extend the one of size M". Signatures are verified by a small pure-Python Ed25519
(RFC 8032 §5.1.7) below, checked against OpenSSL in the project's tests.

    python3 check_ledger.py --cycle 42 https://fund.example.com

recomputes settled cycle 42 from its published, anonymised inputs (its losses, its profitable
positions by rank) with this script's own code: L, F, U, P, the screening, S, the threshold, every
apportionment with the rounding rule, the backstop and the uncovered rest; rebuilds the Merkle
root and finds B and the fund's payment in the ledger; names every figure that differs.

    python3 check_ledger.py --proof position-proof-USDT-cycle-42-rank-3.json https://fund.example.com

checks a trader's proof (from their statement or My positions) against the Merkle root the settled
cycle publishes: the site's figures only, never the proof's own cycle_url, which whoever wrote the
file chose. The proof's asset, precision, cycle, count and root must be the published ones, its
amounts are read with the published precision, its leaf (and commitment) recomputed from its
fields and its path, which must have the shape its rank gives, folded up to the published root.

Exit status 0: intact; 1: broken (the reason on stdout), or not checkable: a malformed proof or
state file, a site that cannot be read (the reason on stderr).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from array import array
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

GENESIS = "0" * 64
PROOF_FORMAT = "insurance-fund-apportionment-proof/1"
PROOF_BYTES = 1_000_000  # a proof is a few kilobytes
ANSWER_BYTES = 50_000_000
MAX_ID = 2**63 - 1
MAX_UNITS = 10**18 - 1
MAX_PRECISION = 18
MAX_PATH = 64  # a tree of 2**63 leaves is 63 levels high
ASSET = re.compile(r"[A-Z0-9]{1,16}")
HEX64 = re.compile(r"[0-9a-f]{64}")
DECIMAL = re.compile(r"[0-9]{1,40}(\.[0-9]{1,40})?")
PROOF_FIELDS = (
    "format",
    "asset",
    "precision",
    "cycle",
    "rank",
    "position_id",
    "profit",
    "amount",
    "profit_units",
    "amount_units",
    "participant_count",
    "leaf_text",
    "leaf",
    "path",
    "root",
    "cycle_url",
)
PROOF_USAGE = (
    "usage: python3 check_ledger.py --proof FILE URL\n"
    "URL is the site whose published root the proof must reach, e.g. https://fund.example.com "
    "(the proof's own cycle_url is never read)"
)


class Failure(Exception):
    """The check could not be made; the message says why."""


class Malformed(Failure):
    """The proof file is not a well-formed proof."""


class SiteFailure(Failure):
    """The site could not be read, or answered something that is not its public API's."""


class NotPublished(SiteFailure):
    """The site answered 404."""


class Broken(Exception):
    """What the site published does not hold: a rewritten history, a forged checkpoint, a proof
    that does not prove."""


def shown(value, limit: int = 80) -> str:
    """A value from a file or a site, safe to print on one line (control characters escaped)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a number of {len(str(abs(value)))} digits"
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"the number {shown(value)}"
    if isinstance(value, (float, Decimal)):
        text = str(value)
        return f"the number {text if len(text) <= 40 else text[:39] + '…'}"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    return "a list" if isinstance(value, list) else "an object"


class _Redirects(urllib.request.HTTPRedirectHandler):
    """A site may move to another web address, never to a file or an FTP server."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise SiteFailure(f"{req.full_url} redirects to {shown(newurl)}, not a web address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_Redirects)


def site_api(base: str) -> str:
    """The API root of the site at `base`, an http:// or https:// address."""
    try:
        parts = urllib.parse.urlsplit(base)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or any(c.isspace() or not c.isprintable() for c in base)
    ):
        raise Failure(
            f"{shown(base)} is not a site's address: give its http:// or https:// URL, "
            "such as https://fund.example.com"
        )
    return base.rstrip("/") + "/api/v1"


def get(url: str):
    """The JSON the site answers at `url`; SiteFailure (NotPublished for a 404) if there is none."""
    try:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with _opener.open(request, timeout=60) as r:
            body = r.read(ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise NotPublished(f"{url}: not found (404)") from None
        raise SiteFailure(f"{url}: the site answered {e.code} {shown(e.reason)}") from None
    except urllib.error.URLError as e:
        raise SiteFailure(f"{url}: cannot be reached ({e.reason})") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise SiteFailure(f"{url}: cannot be read ({e or type(e).__name__})") from None
    if len(body) > ANSWER_BYTES:
        raise SiteFailure(f"{url}: the answer is larger than {ANSWER_BYTES} bytes")
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SiteFailure(f"{url}: the answer is not JSON") from None


def record_entry(record: dict) -> bytes:
    """A record's canonical bytes (docs/rules.md §6.1): its hash-chain entry and log entry."""
    moment = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")).astimezone(UTC)
    fields = [
        record["asset"],
        str(record["seq"]),
        record["kind"],
        record["amount"],
        record["balance_after"],
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        record["takeover"] or "",
        "" if record["cycle"] is None else str(record["cycle"]),
        "" if record["corrects"] is None else str(record["corrects"]),
        record["reason"] or "",
    ]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def check(base: str, asset: str) -> tuple[bool, str]:
    """Every record of the fund: the hash chain, the running balance, the published head and
    balance; then the fund's signed checkpoint: the records must give its root."""
    api = site_api(base)
    fund_url = f"{api}/funds/{asset}"
    fund = _published(get(fund_url), fund_url, {"chain_head": str, "balance": str})
    records, url = [], f"{api}/funds/{asset}/records?page_size=1000"
    while url:  # newest first, page by page
        page = get(url)
        if not isinstance(page, dict) or type(page.get("results")) is not list:
            raise SiteFailure(f"{url}: not a page of the public API's records")
        records.extend(page["results"])
        url = page.get("next")
        if url is not None and type(url) is not str:
            raise SiteFailure(f"{fund_url}/records: a page's next link is not a link")
    previous, balance, tree = GENESIS, Decimal(0), RootBuilder()
    roots = {}  # tree size → root, for the checkpoint's size
    checkpoint = signed_checkpoint(base, asset)
    for expected_seq, record in enumerate(reversed(records), start=1):
        try:
            if record["seq"] != expected_seq:
                return False, f"record #{expected_seq} is missing (found #{shown(record['seq'])})"
            balance += Decimal(record["amount"])
            if Decimal(record["balance_after"]) != balance:
                return (
                    False,
                    f"record #{record['seq']}: "
                    "balance after does not follow from the records before it",
                )
            entry = record_entry(record)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, ArithmeticError):
            raise SiteFailure(f"record #{expected_seq}: not a record of the public API") from None
        if hashlib.sha256(previous.encode() + b"\n" + entry).hexdigest() != record["hash"]:
            return (
                False,
                f"record #{record['seq']}: its hash does not match its content or its place",
            )
        previous = record["hash"]
        tree.append(hashlib.sha256(b"\x00" + entry).digest())
        if checkpoint and tree.count == checkpoint[0]:
            roots[tree.count] = tree.root()
    if records and previous != fund["chain_head"]:
        return False, "the published chain head is not the last record's hash"
    try:
        if Decimal(fund["balance"]) != balance:
            return False, "the published balance is not the sum of the records"
    except ArithmeticError:
        raise SiteFailure(f"{fund_url}: its balance is not a number") from None
    said = (
        f"{asset}: {len(records)} records, chain intact, head {previous}, balance {fund['balance']}"
    )
    if checkpoint is None:
        return True, said + "; the site publishes no signed checkpoint of this fund"
    size, root, key = checkpoint
    if size > len(records):
        return False, f"the signed checkpoint has {size} records, the site lists {len(records)}"
    if size and roots.get(size) != root:
        return False, (
            f"the records do not give the root of the signed checkpoint of size {size}: "
            "the site shows the list another history than it signed"
        )
    return True, said + (
        f"; they give the root of the checkpoint of size {size} signed by {key} (the key the "
        "site serves: pin it with --monitor)"
    )


def signed_checkpoint(base: str, asset: str):
    """(size, root, key) of the fund's checkpoint, its signature checked with the key the site
    serves; None when the site signs none."""
    site = base.rstrip("/")
    try:
        key = VerifierKey(get_text(f"{site}/log/vkey").strip())
        note = get_text(f"{site}/log/{asset}/checkpoint")
    except NotPublished:
        return None
    text = note_open(note, key)
    origin = text.split("\n", 1)[0]  # whatever host the site names its logs after
    if not origin.endswith(f"/log/{asset}"):
        raise Broken(f"the checkpoint is of the log {shown(origin)}, not of a {asset} fund")
    size, root = checkpoint_parse(text, origin)
    return size, root, f"{key.name}+{key.id:08x}"


# The inclusion proof.


def _unique_keys(pairs) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise Malformed(f"the field {shown(key)} appears twice")
        obj[key] = value
    return obj


def load_proof(path: str):
    """The JSON in the file at `path`; Malformed if it cannot be read or is not JSON."""
    try:
        with open(path, "rb") as f:
            raw = f.read(PROOF_BYTES + 1)
    except OSError as e:
        raise Malformed(f"cannot be read ({e.strerror or e})") from None
    if len(raw) > PROOF_BYTES:
        raise Malformed(f"larger than any proof ({PROOF_BYTES} bytes at most)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8 text") from None
    try:
        return json.loads(text, parse_float=Decimal, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise Malformed(f"not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except ValueError:  # an integer of more digits than Python reads
        raise Malformed("a number in it is longer than any proof holds") from None
    except RecursionError:
        raise Malformed("nested deeper than any proof") from None


def _integer(proof: dict, name: str, low: int, high: int) -> None:
    value = proof[name]
    if type(value) is not int:
        raise Malformed(f'field "{name}": must be a whole number, not {kind_of(value)}')
    if not low <= value <= high:
        raise Malformed(f'field "{name}": must be from {low} to {high}, not {shown(value)}')


def _text(proof: dict, name: str, pattern, what: str) -> None:
    value = proof[name]
    if type(value) is not str:
        raise Malformed(f'field "{name}": must be {what} in quotes, not {kind_of(value)}')
    if len(value) > 100 or not pattern.fullmatch(value):
        raise Malformed(f'field "{name}": must be {what}, not {shown(value)}')


def validated(proof) -> dict:
    """The proof if every field has its type and form (docs/rules.md §6.2); Malformed naming the
    first field that does not."""
    if not isinstance(proof, dict):
        raise Malformed(f"a proof is a JSON object, not {kind_of(proof)}")
    unknown = sorted(set(proof) - set(PROOF_FIELDS))
    if unknown:
        raise Malformed(f"field {shown(unknown[0])}: no proof has such a field")
    missing = [name for name in PROOF_FIELDS if name not in proof]
    if missing:
        raise Malformed(f'field "{missing[0]}": missing')
    if proof["format"] != PROOF_FORMAT:
        raise Malformed(f'field "format": must be "{PROOF_FORMAT}", not {shown(proof["format"])}')
    _text(proof, "asset", ASSET, "an asset code (1 to 16 capital letters and digits)")
    _integer(proof, "precision", 0, MAX_PRECISION)
    for name in ("cycle", "rank", "position_id", "participant_count"):
        _integer(proof, name, 1, MAX_ID)
    for name in ("profit", "amount"):
        _text(proof, name, DECIMAL, "decimal text such as 266.66666667")
        _integer(proof, f"{name}_units", 0, MAX_UNITS)
    if type(proof["leaf_text"]) is not str or len(proof["leaf_text"]) > 200:
        raise Malformed(f'field "leaf_text": must be its text, not {kind_of(proof["leaf_text"])}')
    for name in ("leaf", "root"):
        _text(proof, name, HEX64, "64 lowercase hex digits")
    _validated_path(proof["path"])
    if type(proof["cycle_url"]) is not str or len(proof["cycle_url"]) > 2000:
        raise Malformed(f'field "cycle_url": must be text, not {kind_of(proof["cycle_url"])}')
    return proof


def units_of(text: str, places: int) -> int | None:
    """The integer units of decimal text written with exactly `places` places and no leading
    zero (the API's form); None for any other writing."""
    whole, point, fraction = text.partition(".")
    if len(fraction) != places or (places == 0 and point) or (len(whole) > 1 and whole[0] == "0"):
        return None
    return int(whole + fraction)


def format_units(units: int, places: int) -> str:
    """Integer units as decimal text with exactly `places` places (the API's form)."""
    if not places:
        return str(units)
    digits = str(units).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}"


def _published(data, url: str, fields: dict) -> dict:
    """The site's answer, if it has the fields its public API gives (SiteFailure otherwise)."""
    if not isinstance(data, dict):
        raise SiteFailure(f"{url}: the answer is not the public API's")
    for name, kind in fields.items():
        if type(data.get(name)) is not kind:
            raise SiteFailure(f"{url}: the answer's {name} is {kind_of(data.get(name))}")
    return data


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _settled_cycle(proof: dict, base: str, cycle_url: str, warn) -> tuple[dict, str]:
    """The proof's cycle as the site at `base` publishes it, settled and the proof's asset's:
    (its figures, "") or ({}, why not). The proof's own cycle_url is never read."""
    asset, cycle = proof["asset"], proof["cycle"]
    if proof["cycle_url"] != cycle_url:
        warn(
            f"the proof names its cycle at {shown(proof['cycle_url'])}; "
            f"it is checked against {cycle_url}, the site you named, instead"
        )
    try:
        published = get(cycle_url)
    except NotPublished:
        return {}, f"{base} publishes no cycle {cycle}"
    published = _published(published, cycle_url, {"id": int, "asset": str, "status": str})
    if (published["id"], published["asset"]) != (cycle, asset):
        return {}, (
            f"{cycle_url} is {shown(published['asset'])} cycle {published['id']}, "
            f"not the proof's {asset} cycle {cycle}"
        )
    if published["status"] != "settled":
        return {}, f"cycle {cycle} is {shown(published['status'])}, not settled: it has no root"
    return published, ""


def _published_precision(proof: dict, base: str, api: str) -> tuple[int, str]:
    """The precision the site publishes for the proof's asset, which must be the proof's:
    (places, "") or (0, why not)."""
    asset = proof["asset"]
    fund_url = f"{api}/funds/{asset}"
    try:
        fund = _published(get(fund_url), fund_url, {"asset": str, "precision": int})
    except NotPublished:
        return 0, f"{base} publishes no {asset} fund"
    places = fund["precision"]
    if fund["asset"] != asset or not 0 <= places <= MAX_PRECISION:
        raise SiteFailure(f"{fund_url}: not the {asset} fund with its precision")
    if proof["precision"] != places:
        return 0, (
            f"the proof's precision {proof['precision']} is not {asset}'s published precision "
            f"{places} ({fund_url})"
        )
    return places, ""


def check_proof(proof, base: str, warn=_warn) -> tuple[bool, str]:
    """Checks the proof against the figures the site at `base` publishes: (True, what it proves)
    or (False, why it does not). Malformed for a proof of the wrong form, SiteFailure when the
    site cannot be read. The proof's cycle_url is never read."""
    proof = validated(proof)
    api = site_api(base)
    asset, cycle, rank = proof["asset"], proof["cycle"], proof["rank"]
    cycle_url = f"{api}/cycles/{cycle}"
    published, why = _settled_cycle(proof, base, cycle_url, warn)
    if why:
        return False, why
    published = _published(
        published, cycle_url, {"participant_count": int, "apportionment_root": str}
    )
    places, why = _published_precision(proof, base, api)
    if why:
        return False, why
    count = published["participant_count"]
    if proof["participant_count"] != count:
        return False, (
            f"the proof's participant_count {proof['participant_count']} is not the {count} "
            f"participants cycle {cycle} publishes"
        )
    root = published["apportionment_root"]
    if proof["root"] != root:
        return False, f"the proof's root is not the apportionment_root cycle {cycle} publishes"
    for name in ("profit", "amount"):
        units = units_of(proof[name], places)
        if units is None:
            return False, (
                f"the proof's {name} {shown(proof[name])} is not written as {asset}'s amounts "
                f"are ({places} decimal places, no leading zero)"
            )
        if units != proof[f"{name}_units"]:
            return False, (
                f"the proof's {name} {proof[name]} is not its {name}_units "
                f"{proof[f'{name}_units']} at {places} decimal places"
            )
    text = "|".join(
        str(proof[k])
        for k in ("asset", "cycle", "rank", "position_id", "profit_units", "amount_units")
    )
    if proof["leaf_text"] != text:
        return False, f"the proof's leaf_text is not {text}, the text of its fields"
    node = hashlib.sha256(b"\x00" + text.encode()).digest()
    if node.hex() != proof["leaf"]:
        return False, "the proof's leaf is not the hash of its apportionment"
    node, why = _fold(node, rank - 1, count, proof["path"], "participants")
    if why:
        return False, why
    if node.hex() != root:
        return False, f"the proof's path does not lead to the root cycle {cycle} publishes"
    return True, (
        f"{asset} cycle {cycle}: apportionment of {format_units(proof['amount_units'], places)} "
        f"(rank {rank}, position {proof['position_id']}) is included in the root {root} "
        f"that {cycle_url} publishes"
    )


# --- Ed25519 signature verification (RFC 8032 §5.1.7), standard library only. ---
# Curve: -x^2 + y^2 = 1 + d*x^2*y^2 over GF(p). Points are extended coordinates
# (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z.
_ED_P = 2**255 - 19
_ED_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point B
_ED_D = -121665 * pow(121666, -1, _ED_P) % _ED_P
_ED_D2 = 2 * _ED_D % _ED_P
_ED_SQRT_M1 = pow(2, (_ED_P - 1) // 4, _ED_P)  # a square root of -1
_ED_Point = tuple[int, int, int, int]


def _ed_add(p1: _ED_Point, p2: _ED_Point) -> _ED_Point:
    """Unified addition (HWCD 2008, a = -1); complete on this curve since d is a non-square."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % _ED_P
    b = (y1 + x1) * (y2 + x2) % _ED_P
    c = t1 * _ED_D2 * t2 % _ED_P
    d = 2 * z1 * z2 % _ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _ED_P, g * h % _ED_P, f * g % _ED_P, e * h % _ED_P


def _ed_double(pt: _ED_Point) -> _ED_Point:
    """Dedicated doubling (HWCD 2008, a = -1); T of the input is not needed."""
    x1, y1, z1, _ = pt
    a, b, c = x1 * x1 % _ED_P, y1 * y1 % _ED_P, 2 * z1 * z1 % _ED_P
    e, g, h = (x1 + y1) ** 2 - a - b, b - a, -a - b
    f = g - c
    return e * f % _ED_P, g * h % _ED_P, f * g % _ED_P, e * h % _ED_P


def _ed_decode(enc: bytes) -> _ED_Point | None:
    """Decode a 32-byte point (RFC 8032 §5.1.3), or None if it is not on the curve.

    Deliberately as lenient as OpenSSL's ge_frombytes_vartime (which `cryptography` uses for
    the public key): a non-canonical y (p <= y < 2^255) is reduced mod p, and x = 0 with the
    sign bit set is accepted. RFC 8032 would reject both; see the tests.
    """
    n = int.from_bytes(enc, "little")
    sign, y = n >> 255, (n & ((1 << 255) - 1)) % _ED_P
    u, v = (y * y - 1) % _ED_P, (_ED_D * y * y + 1) % _ED_P  # x^2 = u / v
    x = u * v**3 * pow(u * v**7, (_ED_P - 5) // 8, _ED_P) % _ED_P  # candidate root
    vxx = v * x * x % _ED_P
    if vxx != u:
        if vxx != -u % _ED_P:
            return None  # u / v is not a square: no such point
        x = x * _ED_SQRT_M1 % _ED_P
    if x & 1 != sign:
        x = -x % _ED_P
    return x, y, 1, x * y % _ED_P


def _ed_encode(pt: _ED_Point) -> bytes:
    """Canonical 32-byte encoding: y little-endian, with the parity of x in the top bit."""
    zinv = pow(pt[2], -1, _ED_P)
    x, y = pt[0] * zinv % _ED_P, pt[1] * zinv % _ED_P
    return (y | (x & 1) << 255).to_bytes(32, "little")


_ED_B = _ed_decode((4 * pow(5, -1, _ED_P) % _ED_P).to_bytes(32, "little"))  # y = 4/5, x even
assert _ED_B is not None


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Return True iff `signature` is a valid Ed25519 signature of `message` under `public_key`.

    Cofactorless check [S]B == R + [k]A, done as OpenSSL does it: compute [S]B - [k]A and
    compare its canonical encoding with the bytes of R. So R is never decoded, and an R that
    is non-canonical (y >= p, or x = 0 with the sign bit set) or not on the curve never matches.
    """
    args = (public_key, signature, message)
    if not all(isinstance(v, (bytes, bytearray, memoryview)) for v in args):
        return False
    try:
        pk, sig, msg = (bytes(v) for v in args)
    except ValueError:  # e.g. a released memoryview
        return False
    if len(pk) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    a = _ed_decode(pk)
    if s >= _ED_L or a is None:  # S >= L would make signatures malleable
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % _ED_L
    neg_a = (-a[0] % _ED_P, a[1], a[2], -a[3] % _ED_P)
    table = {1: _ED_B, 2: neg_a, 3: _ed_add(_ED_B, neg_a)}  # Straus/Shamir: one shared chain
    q = (0, 1, 1, 0)  # identity
    for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        q = _ed_double(q)
        bits = (s >> i & 1) | (k >> i & 1) << 1
        if bits:
            q = _ed_add(q, table[bits])
    return _ed_encode(q) == sig[:32]


# --- A cycle anyone can recompute (--cycle) and a position's proof of form 2. ---

CYCLE_FIGURES = (
    ("L, the loss", "loss"),
    ("F, the fund's share", "fund_share"),
    ("U, the users' share", "users_share"),
    ("P, the total profit", "total_profit"),
    ("S, the participants' profit", "participants_profit"),
    ("the threshold profit", "threshold_profit"),
    ("the apportioned total", "apportioned"),
    ("the backstop", "backstop"),
    ("the uncovered rest", "uncovered"),
)
LINE_BYTES = 10_000
MAX_ROWS = 50_000_000


def get_lines(url: str):
    """The JSON objects of a JSON Lines answer, one by one (streamed: a million rows need no
    more memory than one)."""
    try:
        request = urllib.request.Request(url, headers={"Accept": "application/jsonl"})
        response = _opener.open(request, timeout=300)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise NotPublished(f"{url}: not found (404)") from None
        raise SiteFailure(f"{url}: the site answered {e.code} {shown(e.reason)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise SiteFailure(f"{url}: cannot be read ({e})") from None
    with response:
        for number in range(1, MAX_ROWS + 2):
            try:
                line = response.readline(LINE_BYTES + 1)
            except (OSError, http.client.HTTPException) as e:
                raise SiteFailure(f"{url}: cannot be read ({e})") from None
            if not line:
                return
            if number > MAX_ROWS or len(line) > LINE_BYTES or not line.endswith(b"\n"):
                raise SiteFailure(f"{url}: line {number} is not a row of the public API")
            try:
                row = json.loads(line.decode("utf-8"), object_pairs_hook=_unique_keys)
            except (UnicodeDecodeError, ValueError, RecursionError, Malformed):
                raise SiteFailure(f"{url}: line {number} is not JSON") from None
            if not isinstance(row, dict):
                raise SiteFailure(f"{url}: line {number} is not an object")
            yield row


def _units(value, places: int, what: str) -> int:
    """Published decimal text in `places` places as integer units; SiteFailure otherwise."""
    units = units_of(value, places) if type(value) is str and DECIMAL.fullmatch(value) else None
    if units is None or units > MAX_UNITS:
        raise SiteFailure(f"{what} is {kind_of(value)}, not an amount with {places} places")
    return units


def _ratio(value, what: str) -> Fraction:
    if type(value) is not str or not re.fullmatch(r"[01](\.[0-9]{1,4})?", value):
        raise SiteFailure(f"{what} is {kind_of(value)}, not a ratio such as 0.2000")
    ratio = Fraction(value)
    if ratio > 1:
        raise SiteFailure(f"{what} is {value}, more than 1")
    return ratio


def position_leaf(asset: str, cycle: int, rank: int, commitment: str, profit: int, amount: int):
    text = f"v2|{asset}|{cycle}|{rank}|{commitment}|{profit}|{amount}"
    return hashlib.sha256(b"\x00" + text.encode()).digest()


def merkle_root_of(leaves: list) -> str:
    """docs/rules.md §6.2: pairs of a level hashed, an odd last hash carried up."""
    if not leaves:
        return ""
    level = leaves
    while len(level) > 1:
        parents = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0].hex()


class RootBuilder:
    """RFC 9162's tree root, built leaf by leaf with O(log n) memory: a stack of the perfect
    subtrees the leaves so far make (one per bit of their count), merged as they fill."""

    def __init__(self):
        self.count, self._stack = 0, []  # [(height, hash)], heights decreasing

    def append(self, leaf: bytes) -> None:
        self.count += 1
        height, node = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            node = _node(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = _node(left, node)
        return node


def recompute_cycle(cycle: dict, places: int, losses, positions) -> tuple[list[str], str]:
    """The settlement of docs/rules.md §2 recomputed from the published inputs alone, compared
    with every published figure, amount and the root: (differences, summary). The positions are
    read as a stream: 16 bytes a position are kept (its profit and amount), the root is built as
    the rows arrive."""
    asset, cycle_id = cycle["asset"], cycle["id"]
    form = cycle.get("root_format")
    if type(form) is not int or form not in (1, 2):
        raise SiteFailure(f"the cycle's root_format is {kind_of(form)}, not 1 or 2")
    fund_ratio = _ratio(cycle.get("fund_ratio"), "the fund ratio")
    screening = _ratio(cycle.get("screening_ratio"), "the screening ratio")
    balance = _units(cycle.get("balance_before"), places, "B, the balance before")
    loss, loss_count = 0, 0
    for row in losses:
        loss_count += 1
        units = _units(row.get("loss"), places, f"loss {loss_count}")
        if units <= 0:
            raise Broken(f"loss {loss_count} is not a loss ({row.get('loss')})")
        loss += units
    fund_share = min(loss * fund_ratio.numerator // fund_ratio.denominator, balance)
    users_share = loss - fund_share
    profits, published = array("q"), array("q")  # by rank, from 1
    tree, seen = RootBuilder(), set()
    for row in positions:
        rank = len(profits) + 1
        if type(row.get("rank")) is not int or row["rank"] != rank:
            raise Broken(f"position row {rank} has the rank {shown(row.get('rank'))}")
        profit = _units(row.get("profit"), places, f"rank {rank}'s profit")
        amount = _units(row.get("amount"), places, f"rank {rank}'s amount")
        if profit <= 0:
            raise Broken(f"rank {rank} has no profit ({row.get('profit')})")
        if profits and profit > profits[-1]:
            raise Broken(f"rank {rank} has more profit than rank {rank - 1}: not in rank order")
        if form == 2:
            commitment = row.get("commitment")
            if type(commitment) is not str or not HEX64.fullmatch(commitment):
                raise SiteFailure(f"rank {rank}'s commitment is {kind_of(commitment)}")
            # Each position appears once: two commitments that share their first 64 bits are
            # refused as one repeated (for random salts, as likely as guessing one).
            short = int(commitment[:16], 16)
            if short in seen:
                raise Broken(f"rank {rank}'s commitment repeats an earlier rank's")
            seen.add(short)
            tree.append(position_leaf(asset, cycle_id, rank, commitment, profit, amount))
        profits.append(profit)
        published.append(amount)
    total = sum(profits)
    count, running = 0, 0
    if users_share > 0 and profits:
        target = screening.numerator * total
        for profit in profits:
            running += profit
            count += 1
            if running * screening.denominator >= target:
                break
    threshold = profits[count - 1] if count else 0
    if users_share >= running:
        amounts = list(profits[:count])
    else:
        amounts, remainders = [], []
        for profit in profits[:count]:
            share, remainder = divmod(users_share * profit, running)
            amounts.append(share)
            remainders.append(remainder)
        leftover = users_share - sum(amounts)
        for i in sorted(range(count), key=lambda i: -remainders[i])[:leftover]:
            amounts[i] += 1
    apportioned = sum(amounts)
    backstop = min(users_share - apportioned, balance - fund_share)
    uncovered = users_share - apportioned - backstop
    figures = {
        "loss": loss, "fund_share": fund_share, "users_share": users_share,
        "total_profit": total, "participants_profit": running, "threshold_profit": threshold,
        "apportioned": apportioned, "backstop": backstop, "uncovered": uncovered,
    }  # fmt: skip
    differences = []
    for label, name in CYCLE_FIGURES:
        said = _units(cycle.get(name), places, label)
        if said != figures[name]:
            differences.append(
                f"{label}: the cycle publishes {format_units(said, places)}, its inputs "
                f"give {format_units(figures[name], places)}"
            )
    for label, name, value in (
        ("profitable positions", "profitable_count", len(profits)),
        ("participants", "participant_count", count),
    ):
        said = cycle.get(name)
        if type(said) is not int or said != value:
            differences.append(
                f"the number of {label}: the cycle publishes {shown(said)}, its inputs give {value}"
            )
    wrong = 0
    for i, amount in enumerate(published):
        expected = amounts[i] if i < count else 0
        if amount != expected:
            wrong += 1
            if wrong <= 20:
                differences.append(
                    f"rank {i + 1}: the apportionment published is "
                    f"{format_units(amount, places)}, the rules give "
                    f"{format_units(expected, places)}"
                )
    if wrong > 20:
        differences.append(f"… and {wrong - 20} more ranks whose apportionment differs")
    root = cycle.get("apportionment_root")
    if form == 2:
        rebuilt = tree.root().hex() if tree.count else ""
        if rebuilt != root:
            differences.append(
                "the Merkle root: the published positions do not give the root the cycle "
                f"publishes ({shown(root)})"
            )
        root_said = f"the root {root} rebuilt"
    else:
        root_said = (
            "its root (form 1, settled before the inputs were published) commits to position "
            "ids, which are not published: each participant checks theirs with --proof"
        )
    summary = (
        f"{asset} cycle {cycle_id}: recomputed from {loss_count} losses and {len(profits)} "
        f"profitable positions: L {format_units(loss, places)}, F "
        f"{format_units(fund_share, places)}, U {format_units(users_share, places)}, P "
        f"{format_units(total, places)}, S {format_units(running, places)}, threshold "
        f"{format_units(threshold, places)}, {count} participants, backstop "
        f"{format_units(backstop, places)}, uncovered {format_units(uncovered, places)}; every "
        f"figure and amount matches; {root_said}"
    )
    return differences, summary


def anchor_problems(cycle: dict, places: int, fetch_record) -> tuple[list[str], str]:
    """B and the fund's payment found in the hash-chained ledger: the record the cycle names
    (balance_seq) has the balance B after it and, when the fund paid, the next record is the
    cycle's coverage of −(F + backstop). (problems, what was checked)."""
    seq = cycle.get("balance_seq")
    if seq is None:
        return (
            [],
            "B is not tied to a ledger record (the cycle was settled before that was published)",
        )
    if type(seq) is not int or not 0 <= seq < MAX_ID:
        raise SiteFailure(f"the cycle's balance_seq is {kind_of(seq)}")
    balance = _units(cycle.get("balance_before"), places, "B, the balance before")
    paid = _units(cycle.get("fund_share"), places, "F") + _units(
        cycle.get("backstop"), places, "the backstop"
    )
    problems = []
    if seq == 0:
        if balance:
            problems.append(f"B is {format_units(balance, places)}, yet the fund had no record")
    else:
        record = fetch_record(seq)
        after = _units(record.get("balance_after"), places, f"record #{seq}'s balance after")
        if after != balance:
            problems.append(
                f"B: the cycle publishes {format_units(balance, places)}, the balance after "
                f"record #{seq} is {format_units(after, places)}"
            )
    if paid:
        record = fetch_record(seq + 1)
        amount = record.get("amount")
        if (
            record.get("kind") != "settlement_coverage"
            or record.get("cycle") != cycle["id"]
            or type(amount) is not str
            or amount != format_units(-paid, places)
        ):
            problems.append(
                f"the fund's payment: record #{seq + 1} is not this cycle's coverage of "
                f"{format_units(-paid, places)} (F + backstop)"
            )
    elif seq and cycle.get("status") == "settled":
        pass  # the fund paid nothing: no coverage record follows
    return problems, f"B and the fund's payment match ledger records #{seq} and on"


def check_cycle(base: str, cycle_id: int) -> tuple[bool, str]:
    api = site_api(base)
    url = f"{api}/cycles/{cycle_id}"
    try:
        cycle = _published(get(url), url, {"id": int, "asset": str, "status": str})
    except NotPublished:
        return False, f"{base} publishes no cycle {cycle_id}"
    if cycle["id"] != cycle_id or not ASSET.fullmatch(cycle["asset"]):
        raise SiteFailure(f"{url} is not cycle {cycle_id}")
    if cycle["status"] != "settled":
        return False, f"cycle {cycle_id} is {shown(cycle['status'])}, not settled yet"
    fund_url = f"{api}/funds/{cycle['asset']}"
    places = _published(get(fund_url), fund_url, {"precision": int})["precision"]
    if not 0 <= places <= MAX_PRECISION:
        raise SiteFailure(f"{fund_url}: the precision {places} is not an asset's")
    differences, summary = recompute_cycle(
        cycle, places, get_lines(f"{url}/losses"), get_lines(f"{url}/positions")
    )

    def fetch_record(seq: int) -> dict:
        record_url = f"{fund_url}/records/{seq}"
        try:
            record = get(record_url)
        except NotPublished:
            raise Broken(f"the ledger has no record #{seq}, which the cycle names") from None
        record = _published(record, record_url, {"seq": int, "asset": str})
        if (record["seq"], record["asset"]) != (seq, cycle["asset"]):
            raise SiteFailure(f"{record_url} is not record #{seq} of {cycle['asset']}")
        return record

    problems, anchored = anchor_problems(cycle, places, fetch_record)
    differences += problems
    summary += f"; {anchored}"
    if differences:
        return False, f"{cycle['asset']} cycle {cycle_id}: " + "; ".join(differences)
    return True, summary


# --- Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint). ---


def _b64(text: str, what: str, error=Failure) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise error(f"{what} is not base64") from None


class VerifierKey:
    """A C2SP vkey: name+keyid+base64(0x01 ‖ Ed25519 public key)."""

    def __init__(self, vkey: str):
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]) or not parts[0]:
            raise Failure(f"{shown(vkey)} is not a verifier key (name+keyid+key)")
        if any(c.isspace() for c in parts[0]):
            raise Failure(f"{shown(vkey)} is not a verifier key: its name holds a space")
        material = _b64(parts[2], "the verifier key")
        if len(material) != 33 or material[0] != 1:
            raise Failure(f"{shown(vkey)} is not an Ed25519 verifier key")
        self.name, self.id, self.public_key = parts[0], int(parts[1], 16), material[1:]
        if note_key_id(self.name, self.public_key) != self.id:
            raise Failure(f"{shown(vkey)}: its key id is not its key's")
        self.text = vkey.strip()


def note_key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def note_open(note: str, key: VerifierKey) -> str:
    """The text of a signed note that `key` signed; Broken otherwise."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise Broken("the checkpoint is not a signed note (text, a blank line, signatures)")
    text += "\n"
    lines = signatures[:-1].split("\n")
    if len(lines) > 16:
        raise Broken("the checkpoint carries more than 16 signatures")
    parsed = []
    for line in lines:  # every line a signature, as C2SP signed-note says, before any is used
        if not line.startswith("\u2014 ") or line.count(" ") != 2:
            raise Broken(f"the checkpoint's signature line {shown(line)} is malformed")
        name, blob = line[2:].split(" ")
        blob = _b64(blob, "a signature", Broken)
        if not name or len(blob) < 5:
            raise Broken(f"the checkpoint's signature line {shown(line)} is malformed")
        parsed.append((name, blob))
    for name, blob in parsed:
        if name == key.name and int.from_bytes(blob[:4], "big") == key.id:
            if len(blob) != 68 or not ed25519_verify(key.public_key, blob[4:], text.encode()):
                raise Broken(f"the checkpoint's signature by {key.name} does not verify")
            return text
    raise Broken(f"the checkpoint is not signed by the pinned key {key.name}+{key.id:08x}")


def checkpoint_parse(text: str, origin: str) -> tuple[int, bytes]:
    """(size, root hash) of a checkpoint's text, its origin checked."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise Broken("the checkpoint does not read origin, size and root hash, one a line")
    if lines[0] != origin:
        raise Broken(f"the checkpoint is of the log {shown(lines[0])}, not of {origin}")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]) or int(lines[1]) > MAX_ID:
        raise Broken(f"the checkpoint's size {shown(lines[1])} is not a tree's size")
    root = _b64(lines[2], "the checkpoint's root hash", Broken)
    if len(root) != 32:
        raise Broken("the checkpoint's root hash is not 32 bytes")
    if any(not line for line in lines[3:-1]):
        raise Broken("the checkpoint has an empty extension line")
    return int(lines[1]), root


# --- RFC 9162 §2.1.3.2 and §2.1.4.2: inclusion and consistency proofs. ---


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_ok(index: int, size: int, leaf: bytes, proof: list, root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False  # longer than the tree is high
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def consistency_ok(first: int, second: int, proof: list, first_root, second_root) -> bool:
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


# --- The monitor. ---


STATE_FORMAT = "insurance-fund-monitor/1"
MONITOR_USAGE = (
    "usage: python3 check_ledger.py --monitor STATE URL [--vkey VKEY] [--asset CODE ...] "
    "[--record SEQ] [--origin HOST]\n"
    "STATE is this monitor's own file (created on the first run); VKEY the site's verifier key, "
    "as its README and /log/vkey publish it (pinned in STATE on the first run)"
)


def get_text(url: str) -> str:
    """The text the site answers at `url` (a checkpoint, a key)."""
    try:
        with _opener.open(urllib.request.Request(url), timeout=60) as r:
            body = r.read(100_001)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise NotPublished(f"{url}: not found (404)") from None
        raise SiteFailure(f"{url}: the site answered {e.code} {shown(e.reason)}") from None
    except urllib.error.URLError as e:
        raise SiteFailure(f"{url}: cannot be reached ({e.reason})") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise SiteFailure(f"{url}: cannot be read ({e or type(e).__name__})") from None
    if len(body) > 100_000:
        raise SiteFailure(f"{url}: larger than any checkpoint")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SiteFailure(f"{url}: not UTF-8 text") from None


def _hashes(answer, name: str, url: str) -> list:
    value = answer.get(name) if isinstance(answer, dict) else None
    if type(value) is not list or len(value) > MAX_PATH:
        raise Broken(f"{url}: {name} is not a list of at most {MAX_PATH} hashes")
    if not all(type(h) is str and HEX64.fullmatch(h) for h in value):
        raise Broken(f"{url}: {name} holds something that is not a hash (64 hex digits)")
    return [bytes.fromhex(h) for h in value]


def load_state(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            state = json.loads(f.read(10_000_000), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        return {"format": STATE_FORMAT, "site": None, "vkey": None, "logs": {}}
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, Malformed) as e:
        raise Failure(f"the state file {path} cannot be read ({e})") from None
    if (
        not isinstance(state, dict)
        or state.get("format") != STATE_FORMAT
        or not isinstance(state.get("logs"), dict)
        or not all(_kept_ok(asset, kept) for asset, kept in state["logs"].items())
    ):
        raise Failure(f"the state file {path} is not this monitor's")
    return state


def _kept_ok(asset, kept) -> bool:
    """A kept checkpoint as save_state writes it: its size, root and signed note."""
    if type(asset) is not str or not isinstance(kept, dict):
        return False
    size, root = kept.get("size"), kept.get("root")
    if type(size) is not int or not 0 <= size <= MAX_ID or type(root) is not str:
        return False
    try:
        return len(base64.b64decode(root.encode("ascii"), validate=True)) == 32
    except (ValueError, UnicodeEncodeError):
        return False


def save_state(path: str, state: dict) -> None:
    temporary = f"{path}.new"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


def monitor_fund(base: str, key: VerifierKey, asset: str, origin: str, kept, record):
    """Checks one fund's latest checkpoint against the one kept: (message, new kept)."""
    url = f"{base.rstrip('/')}/log/{asset}/checkpoint"
    note = get_text(url)
    size, root = checkpoint_parse(note_open(note, key), origin)
    api = site_api(base)
    said = f"{asset}: checkpoint of size {size} signed by {key.name}+{key.id:08x}"
    if kept is None:
        said += ", kept as the first one (nothing earlier to compare with)"
    else:
        old_size, old_root = kept["size"], base64.b64decode(kept["root"])
        refusal = f"checkpoint of size {size} does not extend the one of size {old_size}"
        if size < old_size:
            raise Broken(f"{refusal}: the log is smaller than it was (rolled back)")
        if size == old_size:
            if root != old_root:
                raise Broken(f"{refusal}: two different trees of one size")
            said += ", the same as kept"
        elif old_size == 0:
            said += ", extends the empty one"
        else:
            proof_url = f"{api}/funds/{asset}/log/consistency?first={old_size}&second={size}"
            proof = _hashes(get(proof_url), "proof", proof_url)
            if not consistency_ok(old_size, size, proof, old_root, root):
                raise Broken(f"{refusal}: its consistency proof fails (history was rewritten)")
            said += f", extends the one of size {old_size} ({len(proof)} hashes of proof)"
    if size:
        seq = record if record is not None else 1 + int.from_bytes(os.urandom(8), "big") % size
        if not 1 <= seq <= size:
            raise Failure(f"record #{seq} is not in the checkpoint of size {size}")
        rec_url = f"{api}/funds/{asset}/records/{seq}"
        fields = _published(get(rec_url), rec_url, {"seq": int, "asset": str})
        if (fields["seq"], fields["asset"]) != (seq, asset):
            raise Broken(f"{rec_url} is not {asset} record #{seq}")
        try:
            leaf = hashlib.sha256(b"\x00" + record_entry(fields)).digest()
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            raise SiteFailure(f"{rec_url}: not a record of the public API") from None
        proof_url = f"{api}/funds/{asset}/log/inclusion?seq={seq}&size={size}"
        proof = _hashes(get(proof_url), "proof", proof_url)
        if not inclusion_ok(seq - 1, size, leaf, proof, root):
            raise Broken(f"record #{seq} as published is not in the checkpoint of size {size}")
        said += f"; record #{seq} is included"
    return said, {"size": size, "root": base64.b64encode(root).decode(), "checkpoint": note}


def published_assets(api: str) -> list:
    """The asset codes of the funds the site lists (SiteFailure for another answer)."""
    url = f"{api}/funds"
    funds = get(url)
    if type(funds) is not list or not all(
        isinstance(f, dict) and type(f.get("asset")) is str for f in funds
    ):
        raise SiteFailure(f"{url}: not the public API's list of funds")
    return [f["asset"] for f in funds]


def origin_host(url: str) -> str:
    """The host a site's log origins name: the URL's host (lower case) and port, no user."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise Failure(f"{shown(url)} has no valid port") from None
    return f"{host}:{port}" if port else host


def monitor(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="check_ledger.py --monitor", usage=MONITOR_USAGE)
    parser.add_argument("state")
    parser.add_argument("url")
    parser.add_argument("--vkey")
    parser.add_argument("--asset", action="append", default=[])
    parser.add_argument("--record", type=int)
    parser.add_argument("--origin", help="the host the site's log origins name")
    try:
        options = parser.parse_args(args)
    except SystemExit:
        return 1
    try:
        api = site_api(options.url)
        state = load_state(options.state)
        if state["site"] not in (None, options.url):
            raise Failure(f"the state file {options.state} is the monitor of {state['site']}")
        pinned = state.get("vkey")
        if options.vkey and pinned and options.vkey.strip() != pinned:
            raise Failure(
                f"the state file pins the key {pinned}, not {options.vkey.strip()}: a new key "
                "is trusted only by starting a new state file"
            )
        if not (options.vkey or pinned):
            served = get_text(f"{options.url.rstrip('/')}/log/vkey").strip()
            _warn(f"pinning the key the site serves now, {served}: compare it with the "
                  "one the exchange publishes elsewhere (or give it with --vkey)")  # fmt: skip
        key = VerifierKey(options.vkey or pinned or served)
        host = options.origin or origin_host(options.url)
        assets = options.asset or published_assets(api)
    except Failure as e:
        print(f"monitor: cannot check: {e}", file=sys.stderr)
        return 1
    broken = False
    for asset in assets:
        if type(asset) is not str or not ASSET.fullmatch(asset):
            print(f"monitor: {shown(asset)} is not an asset code", file=sys.stderr)
            broken = True
            continue
        kept = state["logs"].get(asset)
        try:
            said, state["logs"][asset] = monitor_fund(
                options.url, key, asset, f"{host}/log/{asset}", kept, options.record
            )
        except Broken as e:
            print(f"{asset}: BROKEN: {e}")
            broken = True
        except Failure as e:
            print(f"{asset}: cannot check: {e}", file=sys.stderr)
            broken = True
        else:
            print(said)
    state.update(site=options.url, vkey=key.text)
    try:
        save_state(options.state, state)
    except OSError as e:
        print(f"monitor: the state file {options.state} cannot be written ({e})", file=sys.stderr)
        return 1
    return 1 if broken else 0


POSITION_PROOF_FORMAT = "insurance-fund-position-proof/2"
POSITION_PROOF_FIELDS = (
    "format", "asset", "precision", "cycle", "rank", "position_id", "salt", "commitment",
    "profit", "amount", "profit_units", "amount_units", "participant", "profitable_count",
    "leaf_text", "leaf", "path", "root", "cycle_url",
)  # fmt: skip
HEX32 = re.compile(r"[0-9a-f]{32}")


def _validated_position(proof: dict) -> dict:
    unknown = sorted(set(proof) - set(POSITION_PROOF_FIELDS))
    if unknown:
        raise Malformed(f"field {shown(unknown[0])}: no proof has such a field")
    missing = [name for name in POSITION_PROOF_FIELDS if name not in proof]
    if missing:
        raise Malformed(f'field "{missing[0]}": missing')
    _text(proof, "asset", ASSET, "an asset code (1 to 16 capital letters and digits)")
    _integer(proof, "precision", 0, MAX_PRECISION)
    for name in ("cycle", "rank", "position_id", "profitable_count"):
        _integer(proof, name, 1, MAX_ID)
    for name in ("profit", "amount"):
        _text(proof, name, DECIMAL, "decimal text such as 266.66666667")
        _integer(proof, f"{name}_units", 0, MAX_UNITS)
    _text(proof, "salt", HEX32, "32 lowercase hex digits")
    for name in ("commitment", "leaf", "root"):
        _text(proof, name, HEX64, "64 lowercase hex digits")
    if type(proof["participant"]) is not bool:
        raise Malformed(
            f'field "participant": must be true or false, not {kind_of(proof["participant"])}'
        )
    if type(proof["leaf_text"]) is not str or len(proof["leaf_text"]) > 300:
        raise Malformed(f'field "leaf_text": must be its text, not {kind_of(proof["leaf_text"])}')
    if type(proof["cycle_url"]) is not str or len(proof["cycle_url"]) > 2000:
        raise Malformed(f'field "cycle_url": must be text, not {kind_of(proof["cycle_url"])}')
    return proof


def check_position_proof(proof: dict, base: str, warn=_warn) -> tuple[bool, str]:
    """A profitable position's proof in its cycle's root of form 2, against the site's figures."""
    _validated_position(proof)
    _validated_path(proof["path"])
    api = site_api(base)
    asset, cycle, rank = proof["asset"], proof["cycle"], proof["rank"]
    cycle_url = f"{api}/cycles/{cycle}"
    published, why = _settled_cycle(proof, base, cycle_url, warn)
    if why:
        return False, why
    published = _published(
        published,
        cycle_url,
        {"profitable_count": int, "participant_count": int, "apportionment_root": str},
    )
    if published.get("root_format") != 2:
        return False, f"cycle {cycle}'s root is of form 1: only apportionment proofs reach it"
    places, why = _published_precision(proof, base, api)
    if why:
        return False, why
    count = published["profitable_count"]
    if proof["profitable_count"] != count:
        return False, (
            f"the proof's profitable_count {proof['profitable_count']} is not the {count} "
            f"profitable positions cycle {cycle} publishes"
        )
    root = published["apportionment_root"]
    if proof["root"] != root:
        return False, f"the proof's root is not the apportionment_root cycle {cycle} publishes"
    for name in ("profit", "amount"):
        if units_of(proof[name], places) != proof[f"{name}_units"]:
            return False, (
                f"the proof's {name} {shown(proof[name])} is not its {name}_units "
                f"{proof[f'{name}_units']} written with {places} places"
            )
    participant = rank <= published["participant_count"]
    if proof["participant"] != participant or (not participant and proof["amount_units"]):
        return False, (
            f"rank {rank} is {'' if participant else 'not '}among the cycle's "
            f"{published['participant_count']} participants, as the proof says otherwise"
        )
    salt = bytes.fromhex(proof["salt"])
    commitment = hashlib.sha256(
        salt + f"position|{cycle}|{proof['position_id']}".encode()
    ).hexdigest()
    if commitment != proof["commitment"]:
        return False, "the proof's commitment is not the hash of its salt and position"
    text = f"v2|{asset}|{cycle}|{rank}|{commitment}|{proof['profit_units']}|{proof['amount_units']}"
    if proof["leaf_text"] != text:
        return False, f"the proof's leaf_text is not {text}, the text of its fields"
    node = hashlib.sha256(b"\x00" + text.encode()).digest()
    if node.hex() != proof["leaf"]:
        return False, "the proof's leaf is not the hash of its leaf_text"
    node, why = _fold(node, rank - 1, count, proof["path"], "profitable positions")
    if why:
        return False, why
    if node.hex() != root:
        return False, f"the proof's path does not lead to the root cycle {cycle} publishes"
    amount = format_units(proof["amount_units"], places)
    return True, (
        f"{asset} cycle {cycle}: position {proof['position_id']} (rank {rank} of {count}, "
        f"profit {format_units(proof['profit_units'], places)}, "
        f"{'apportioned ' + amount if participant else 'below the threshold: apportioned 0'}) "
        f"is included in the root {root} that {cycle_url} publishes"
    )


def verify_proof(proof, base: str, warn=_warn) -> tuple[bool, str]:
    """A proof of either form (a position's, form 2; an apportionment's, form 1), checked against
    the figures the site at `base` publishes."""
    if isinstance(proof, dict) and proof.get("format") == POSITION_PROOF_FORMAT:
        return check_position_proof(proof, base, warn)
    return check_proof(proof, base, warn)


def _validated_path(path) -> None:
    if type(path) is not list:
        raise Malformed(f'field "path": must be a list of steps, not {kind_of(path)}')
    if len(path) > MAX_PATH:
        raise Malformed(f'field "path": {len(path)} steps, more than any tree has ({MAX_PATH})')
    for i, step in enumerate(path):
        if type(step) is not dict or set(step) != {"side", "hash"}:
            raise Malformed(f'field "path", step {i + 1}: must be {{"side": …, "hash": …}}')
        if type(step["side"]) is not str or step["side"] not in ("left", "right"):
            raise Malformed(
                f'field "path", step {i + 1}: the side must be "left" or "right", '
                f"not {kind_of(step['side'])}"
            )
        if type(step["hash"]) is not str or not HEX64.fullmatch(step["hash"]):
            raise Malformed(
                f'field "path", step {i + 1}: the hash must be 64 lowercase hex digits, '
                f"not {kind_of(step['hash'])}"
            )


def _fold(node: bytes, index: int, size: int, path: list, leaves: str) -> tuple[bytes, str]:
    """Folds the path from leaf `index` of `size` leaves (the cycle's `leaves`) up; the path's
    shape must be the one the index gives: a sibling on the left for an odd index, on the right
    for an even one, none for the last hash of an odd-sized level. (root, "") or (b"", why)."""
    if not 0 <= index < size:
        return b"", f"the proof's rank {index + 1} is not among the cycle's {size} {leaves}"
    steps = iter(path)
    while size > 1:
        if index % 2 or index + 1 < size:
            step = next(steps, None)
            if step is None or step["side"] != ("left" if index % 2 else "right"):
                return b"", f"the proof's path does not fit its rank among the {leaves}"
            sibling = bytes.fromhex(step["hash"])
            node = hashlib.sha256(
                b"\x01" + (sibling + node if step["side"] == "left" else node + sibling)
            ).digest()
        index, size = index // 2, (size + 1) // 2
    if next(steps, None) is not None:
        return b"", f"the proof's path is longer than its {leaves} allow"
    return node, ""


def main(args: list[str]) -> int:
    if args and args[0] == "--monitor":
        return monitor(args[1:])
    if args and args[0] == "--cycle":
        if len(args) != 3 or not re.fullmatch(r"[1-9][0-9]{0,18}", args[1]):
            print("usage: python3 check_ledger.py --cycle ID URL", file=sys.stderr)
            return 1
        try:
            ok, message = check_cycle(args[2], int(args[1]))
        except Broken as e:
            ok, message = False, str(e)
        except Failure as e:
            print(f"cycle {args[1]}: cannot check it: {e}", file=sys.stderr)
            return 1
        print(message if ok else f"cycle {args[1]}: BROKEN: {message}")
        return 0 if ok else 1
    if args and args[0] == "--proof":
        if len(args) != 3:
            print(PROOF_USAGE, file=sys.stderr)
            return 1
        try:
            ok, message = verify_proof(load_proof(args[1]), args[2])
        except Malformed as e:
            print(f"{args[1]}: not a valid proof: {e}", file=sys.stderr)
            return 1
        except Failure as e:
            print(f"proof: cannot check it: {e}", file=sys.stderr)
            return 1
        print(message if ok else f"proof: BROKEN: {message}")
        return 0 if ok else 1
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    asset = args[1].upper()
    if not ASSET.fullmatch(asset):
        print(f"{shown(args[1])} is not an asset code", file=sys.stderr)
        return 1
    try:
        ok, message = check(args[0], asset)
    except Broken as e:
        ok, message = False, str(e)
    except Failure as e:
        print(f"{asset}: cannot check it: {e}", file=sys.stderr)
        return 1
    print(message if ok else f"{asset}: BROKEN: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
