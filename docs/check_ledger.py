#!/usr/bin/env python3
"""Check an insurance fund's published ledger from the public API, with Python's standard library
only: fetches every record of a fund, recomputes the hash chain (canonical form in README.md,
"The hash chain") and the running balance, and names the first record that does not match.

    python3 docs/check_ledger.py https://fund.example.com USDT

It also checks a trader's inclusion proof (downloaded from their apportionment statement)
against the Merkle root the settled cycle publishes (canonical form in README.md, "Merkle roots"):

    python3 docs/check_ledger.py --proof apportionment-proof-USDT-cycle-42-rank-3.json [https://fund.example.com]

The proof names its public cycle; with a base URL the cycle is fetched from that site instead.
Exit status 0: intact (the chain ends at the published head; the proof reaches the published
root); 1: broken.
"""

import hashlib
import json
import sys
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

GENESIS = "0" * 64


def get(url: str) -> dict:
    with urllib.request.urlopen(
        urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=60
    ) as r:
        return json.load(r, parse_float=Decimal)


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
    api = base.rstrip("/") + "/api/v1"
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


def check_proof(proof: dict, base: str | None = None) -> tuple[bool, str]:
    """Recomputes the leaf from the proof's own fields, folds the path up to a root and compares it
    with the root the public cycle report publishes."""
    places = proof["precision"]
    for name in ("profit", "amount"):
        if Decimal(proof[name]).scaleb(places) != proof[f"{name}_units"]:
            return (
                False,
                f"the proof's {name} {proof[name]} "
                f"is not its {name}_units {proof[f'{name}_units']}",
            )
    text = "|".join(
        str(proof[k])
        for k in ("asset", "cycle", "rank", "position_id", "profit_units", "amount_units")
    )
    node = hashlib.sha256(b"\x00" + text.encode()).digest()
    if node.hex() != proof["leaf"]:
        return False, "the proof's leaf is not the hash of its apportionment"
    # The path's shape follows from the rank and the number of leaves: a sibling on the left for an
    # odd index, on the right for an even one, none for the last hash of an odd-sized level.
    index, size, steps = proof["rank"] - 1, proof["participant_count"], iter(proof["path"])
    if not 0 <= index < size:
        return False, "the proof's rank is not among its participants"
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
    if node.hex() != proof["root"]:
        return False, "the proof's path does not lead to the proof's root"
    url = proof["cycle_url"]
    if base:
        url = base.rstrip("/") + "/api/v1/cycles/" + str(proof["cycle"])
    published = get(url)
    if (published.get("id"), published.get("asset")) != (proof["cycle"], proof["asset"]):
        return False, f"{url} is not {proof['asset']} cycle {proof['cycle']}"
    if published.get("participant_count") != proof["participant_count"]:
        return False, "the cycle publishes another number of participants than the proof counts"
    if published.get("status") != "settled" or published.get("apportionment_root") != node.hex():
        return False, f"the root is not the one the cycle publishes at {url}"
    return True, (
        f"{proof['asset']} cycle {proof['cycle']}: "
        f"apportionment of {proof['amount']} (rank {proof['rank']}, "
        f"position {proof['position_id']}) is included in the published root {node.hex()}"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) in (2, 3) and args[0] == "--proof":
        with open(args[1], encoding="utf-8") as f:
            proof = json.load(f, parse_float=Decimal)
        ok, message = check_proof(proof, args[2] if len(args) == 3 else None)
        print(message if ok else f"proof: BROKEN: {message}")
        sys.exit(0 if ok else 1)
    if len(args) != 2:
        sys.exit(__doc__)
    ok, message = check(args[0], args[1].upper())
    print(message if ok else f"{args[1].upper()}: BROKEN: {message}")
    sys.exit(0 if ok else 1)
