#!/usr/bin/env python3
"""Check an insurance fund's published ledger from the public API, with Python's standard library
only: fetches every record of a fund, recomputes the hash chain (canonical form in README.md,
"The hash chain") and the running balance, and names the first record that does not match.

    python3 docs/check_ledger.py https://fund.example.com USDT

It also checks a trader's inclusion proof (downloaded from their apportionment statement)
against the Merkle root the settled cycle publishes (docs/rules.md §6.2):

    python3 docs/check_ledger.py --proof apportionment-proof-USDT-cycle-42-rank-3.json \
        https://fund.example.com

The site is the one you name, never the proof's own cycle_url (a proof is only as good as the
figures it is checked against, and whoever wrote the file chose its cycle_url). From that site the
script reads the cycle (/api/v1/cycles/<id>) and the fund (/api/v1/funds/<asset>); the proof's
asset, precision, cycle, participant count and root must be the published ones, its amounts are
read with the published precision, its leaf is recomputed from its fields and its path, which must
have the shape its rank among the participants gives, is folded up to the published root. Only
then is the apportionment printed.

Exit status 0: intact (the chain ends at the published head; the proof reaches the published
root); 1: broken (the reason on stdout), or not checkable: a malformed proof, a site that cannot be
read (the reason on stderr).
"""

import hashlib
import http.client
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

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


def record_hash(previous: str, record: dict) -> str:
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
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


def check(base: str, asset: str) -> tuple[bool, str]:
    api = site_api(base)
    fund = get(f"{api}/funds/{asset}")
    records, url = [], f"{api}/funds/{asset}/records?page_size=1000"
    while url:  # newest first, page by page
        page = get(url)
        records.extend(page["results"])
        url = page["next"]
    previous, balance = GENESIS, Decimal(0)
    for expected_seq, record in enumerate(reversed(records), start=1):
        if record["seq"] != expected_seq:
            return False, f"record #{expected_seq} is missing (found #{record['seq']})"
        balance += Decimal(record["amount"])
        if Decimal(record["balance_after"]) != balance:
            return (
                False,
                f"record #{record['seq']}: "
                "balance after does not follow from the records before it",
            )
        if record_hash(previous, record) != record["hash"]:
            return (
                False,
                f"record #{record['seq']}: its hash does not match its content or its place",
            )
        previous = record["hash"]
    if records and previous != fund["chain_head"]:
        return False, "the published chain head is not the last record's hash"
    if Decimal(fund["balance"]) != balance:
        return False, "the published balance is not the sum of the records"
    return (
        True,
        f"{asset}: {len(records)} records, chain intact, head {previous}, "
        f"balance {fund['balance']}",
    )


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
    path = proof["path"]
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


def check_proof(proof, base: str, warn=_warn) -> tuple[bool, str]:
    """Checks the proof against the figures the site at `base` publishes: (True, what it proves)
    or (False, why it does not). Malformed for a proof of the wrong form, SiteFailure when the
    site cannot be read. The proof's cycle_url is never read."""
    proof = validated(proof)
    api = site_api(base)
    asset, cycle, rank = proof["asset"], proof["cycle"], proof["rank"]
    cycle_url = f"{api}/cycles/{cycle}"
    if proof["cycle_url"] != cycle_url:
        warn(
            f"the proof names its cycle at {shown(proof['cycle_url'])}; "
            f"it is checked against {cycle_url}, the site you named, instead"
        )
    try:
        published = get(cycle_url)
    except NotPublished:
        return False, f"{base} publishes no cycle {cycle}"
    published = _published(published, cycle_url, {"id": int, "asset": str, "status": str})
    if (published["id"], published["asset"]) != (cycle, asset):
        return False, (
            f"{cycle_url} is {shown(published['asset'])} cycle {published['id']}, "
            f"not the proof's {asset} cycle {cycle}"
        )
    if published["status"] != "settled":
        return False, f"cycle {cycle} is {shown(published['status'])}, not settled: it has no root"
    published = _published(
        published, cycle_url, {"participant_count": int, "apportionment_root": str}
    )
    fund_url = f"{api}/funds/{asset}"
    try:
        fund = _published(get(fund_url), fund_url, {"asset": str, "precision": int})
    except NotPublished:
        return False, f"{base} publishes no {asset} fund"
    places = fund["precision"]
    if fund["asset"] != asset or not 0 <= places <= MAX_PRECISION:
        raise SiteFailure(f"{fund_url}: not the {asset} fund with its precision")
    if proof["precision"] != places:
        return False, (
            f"the proof's precision {proof['precision']} is not {asset}'s published precision "
            f"{places} ({fund_url})"
        )
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
    # The path's shape follows from the rank and the number of leaves: a sibling on the left for an
    # odd index, on the right for an even one, none for the last hash of an odd-sized level.
    index, size, steps = rank - 1, count, iter(proof["path"])
    if not 0 <= index < size:
        return False, f"the proof's rank {rank} is not among the cycle's {count} participants"
    while size > 1:
        if index % 2 or index + 1 < size:
            step = next(steps, None)
            if step is None or step["side"] != ("left" if index % 2 else "right"):
                return False, "the proof's path does not fit its rank among the participants"
            sibling = bytes.fromhex(step["hash"])
            node = hashlib.sha256(
                b"\x01" + (sibling + node if step["side"] == "left" else node + sibling)
            ).digest()
        index, size = index // 2, (size + 1) // 2
    if next(steps, None) is not None:
        return False, "the proof's path is longer than its participants allow"
    if node.hex() != root:
        return False, f"the proof's path does not lead to the root cycle {cycle} publishes"
    return True, (
        f"{asset} cycle {cycle}: apportionment of {format_units(proof['amount_units'], places)} "
        f"(rank {rank}, position {proof['position_id']}) is included in the root {root} "
        f"that {cycle_url} publishes"
    )


def main(args: list[str]) -> int:
    if args and args[0] == "--proof":
        if len(args) != 3:
            print(PROOF_USAGE, file=sys.stderr)
            return 1
        try:
            ok, message = check_proof(load_proof(args[1]), args[2])
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
    except Failure as e:
        print(f"{asset}: cannot check it: {e}", file=sys.stderr)
        return 1
    print(message if ok else f"{asset}: BROKEN: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
