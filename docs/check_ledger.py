#!/usr/bin/env python3
"""Check an insurance fund's published ledger from the public API, with Python's standard library
only: fetches every record of a fund, recomputes the hash chain (canonical form in README.md,
"The hash chain") and the running balance, and names the first record that does not match.

    python3 docs/check_ledger.py https://fund.example.com USDT

Exit status 0: the chain is intact and ends at the fund's published chain head; 1: it is broken.
"""

import hashlib
import json
import sys
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal

GENESIS = "0" * 64


def get(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=60) as r:
        return json.load(r, parse_float=Decimal)


def record_hash(previous: str, record: dict) -> str:
    moment = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")).astimezone(timezone.utc)
    fields = [record["asset"], str(record["seq"]), record["kind"], record["amount"], record["balance_after"],
              moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), record["takeover"] or "",
              "" if record["cycle"] is None else str(record["cycle"]),
              "" if record["corrects"] is None else str(record["corrects"]), record["reason"] or ""]
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
            return False, f"record #{record['seq']}: balance after does not follow from the records before it"
        if record_hash(previous, record) != record["hash"]:
            return False, f"record #{record['seq']}: its hash does not match its content or its place"
        previous = record["hash"]
    if records and previous != fund["chain_head"]:
        return False, "the published chain head is not the last record's hash"
    if Decimal(fund["balance"]) != balance:
        return False, "the published balance is not the sum of the records"
    return True, f"{asset}: {len(records)} records, chain intact, head {previous}, balance {fund['balance']}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ok, message = check(sys.argv[1], sys.argv[2].upper())
    print(message if ok else f"{sys.argv[2].upper()}: BROKEN: {message}")
    sys.exit(0 if ok else 1)
