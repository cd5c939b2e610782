"""docs/check_ledger.py --monitor STATE URL: it pins the verifier key, keeps each fund's last
verified checkpoint and, on each run, checks the new checkpoint's signature and origin, the
consistency proof from the kept one and one record's inclusion. The site it reads here serves
what the real site answered (taken through Django's test client) or a forgery of it.

The outside tester's attack: one record changed by −5 USDC, every later hash, the head, the
balance and the tree recomputed, and a checkpoint signed over the rewritten tree. The chain
checks pass; the monitor, holding a checkpoint from before, names the rewrite."""

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from fund import tlog
from fund.chain import GENESIS, record_hash
from fund.models import FundRecord
from fund.services.transparency import checkpoint_sign
from fund.signednote import Checkpoint, Signer
from tests.fund.test_transparency_log import VKEY, entries_of
from tests.helpers import FakeSite, deposit, tamper

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
SIGNER = Signer.from_skey(settings.LOG_SIGNING_KEY)
ORIGIN = "testserver/log/USDT"


def site_now(site: FakeSite, *, record: int, first: int | None = None) -> int:
    """The site's answers a monitor run reads, for its current checkpoint; returns its size."""
    site.take("/log/USDT/checkpoint", "/log/vkey")
    size = int(site.answers["/log/USDT/checkpoint"][1].decode().split("\n")[1])
    site.take(
        f"/api/v1/funds/USDT/records/{record}",
        f"/api/v1/funds/USDT/log/inclusion?seq={record}&size={size}",
    )
    if first is not None:
        site.take(f"/api/v1/funds/USDT/log/consistency?first={first}&second={size}")
    return size


def monitor(site, state, *extra, record=2) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--monitor", str(state), site.url, "--asset", "USDT",
         "--origin", "testserver", "--record", str(record), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def site(usdt_fund):
    site = FakeSite()
    yield site
    site.server.shutdown()


@pytest.fixture
def watched(usdt_fund, site, tmp_path):
    """Ten deposits, a checkpoint of size 10, and a monitor that has verified it."""
    for i in range(10):
        deposit(usdt_fund, "100", reason=f"deposit {i}")
    checkpoint_sign(fund=usdt_fund)
    site_now(site, record=2)
    state = tmp_path / "monitor.json"
    run = monitor(site, state, "--vkey", VKEY)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "USDT: checkpoint of size 10 signed by testserver/log+9170cae5, kept as the first" in (
        run.stdout
    )
    assert "record #2 is included" in run.stdout
    return state


def kept_size(state) -> int:
    return json.loads(state.read_text())["logs"]["USDT"]["size"]


def test_an_honest_log_extends_what_the_monitor_kept(usdt_fund, site, watched):
    for i in range(7):
        deposit(usdt_fund, "1", reason=f"later {i}")
    checkpoint_sign(fund=usdt_fund)
    site_now(site, record=15, first=10)
    run = monitor(site, watched, record=15)  # the key pinned in the state
    assert run.returncode == 0, run.stdout + run.stderr
    assert "checkpoint of size 17" in run.stdout
    assert "extends the one of size 10" in run.stdout and "record #15 is included" in run.stdout
    assert kept_size(watched) == 17
    run = monitor(site, watched, record=15)  # nothing new: the same checkpoint
    assert run.returncode == 0 and "the same as kept" in run.stdout


def rewrite_history(fund, seq: int, delta_units: int, *, tree: bool = True) -> None:
    """The outside tester's rewrite: record `seq` changed by `delta_units`, every later balance
    and hash recomputed, the fund's head and balance, and (with `tree`) the whole tree rebuilt
    to match."""
    records = list(FundRecord.objects.filter(fund=fund).order_by("seq").select_related("takeover"))
    previous = GENESIS
    for record in records:
        if record.seq == seq:
            record.amount_units += delta_units
        if record.seq >= seq:
            record.balance_after_units += delta_units
            record.hash = record_hash(
                previous=previous, asset=fund.asset.code, precision=fund.asset.precision,
                seq=record.seq, kind=record.kind, amount_units=record.amount_units,
                balance_after_units=record.balance_after_units, created_at=record.created_at,
                takeover="", cycle_id=record.cycle_id, corrects_id=record.corrects_id,
                reason=record.reason,
            )  # fmt: skip
            tamper(
                "UPDATE fund_fundrecord SET amount_units = %s, balance_after_units = %s, "
                "hash = %s WHERE id = %s",
                [record.amount_units, record.balance_after_units, record.hash, record.id],
            )
        previous = record.hash
    tamper("UPDATE fund_fund SET balance_units = %s, head_hash = %s WHERE id = %s",
           [records[-1].balance_after_units, previous, fund.pk])  # fmt: skip
    fund.refresh_from_db()
    if not tree:
        return
    tamper("DELETE FROM fund_logtile WHERE fund_id = %s", [fund.pk])
    updates = tlog.tile_updates(0, {}, [tlog.leaf_hash(e) for e in entries_of(fund)])
    for level, index, data in updates:
        tamper(
            'INSERT INTO fund_logtile (fund_id, level, "index", width, hashes) '
            "VALUES (%s, %s, %s, %s, %s)",
            [fund.pk, level, index, len(data) // 32, data],
        )


def assert_chain_holds(fund) -> None:
    """What check_ledger.py's chain check and the outside tester checked."""
    fund.refresh_from_db()
    previous, balance = GENESIS, 0
    for entry, record in zip(
        entries_of(fund), FundRecord.objects.filter(fund=fund).order_by("seq"), strict=True
    ):
        balance += record.amount_units
        assert record.balance_after_units == balance
        assert hashlib.sha256(previous.encode() + b"\n" + entry).hexdigest() == record.hash
        previous = record.hash
    assert (fund.head_hash, fund.balance_units) == (previous, balance)


def test_a_rewritten_history_is_named_by_the_monitor(usdt_fund, site, watched):
    rewrite_history(usdt_fund, seq=3, delta_units=-5 * 10**8)  # −5 USDT
    for i in range(5):
        deposit(usdt_fund, "1", reason=f"after the rewrite {i}")
    # The chain holds: every hash follows, the head is the last hash, the balance their sum.
    assert_chain_holds(usdt_fund)
    # The site refuses to sign a tree that does not extend its last checkpoint …
    with pytest.raises(Exception, match="does not extend the checkpoint of size 10"):
        checkpoint_sign(fund=usdt_fund)
    # … so the intruder signs with the key it stole.
    tree = tlog.tree_root([tlog.leaf_hash(e) for e in entries_of(usdt_fund)])
    note = SIGNER.sign(Checkpoint(ORIGIN, 15, tree).text())
    site.answers["/log/USDT/checkpoint"] = (200, note.encode())
    site.take(
        "/api/v1/funds/USDT/records/2",
        "/api/v1/funds/USDT/log/inclusion?seq=2&size=15",
        "/api/v1/funds/USDT/log/consistency?first=10&second=15",
    )
    run = monitor(site, watched)
    assert run.returncode == 1
    assert run.stdout.strip() == (
        "USDT: BROKEN: checkpoint of size 15 does not extend the one of size 10: "
        "its consistency proof fails (history was rewritten)"
    )
    assert kept_size(watched) == 10  # the good checkpoint stays the one kept


def grown(usdt_fund, site) -> int:
    for i in range(6):
        deposit(usdt_fund, "1", reason=f"grown {i}")
    checkpoint_sign(fund=usdt_fund)
    return site_now(site, record=2, first=10)


def _signed(origin=ORIGIN, size=16, root=None, signer=SIGNER, fund=None) -> bytes:
    root = (
        root if root is not None else tlog.tree_root([tlog.leaf_hash(e) for e in entries_of(fund)])
    )
    return signer.sign(Checkpoint(origin, size, root).text()).encode()


def _flip_signature(note: bytes) -> bytes:
    text, line = note.decode().rstrip("\n").rsplit("\n", 1)
    name, blob = line[2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    return f"{text}\n— {name} {base64.b64encode(bytes(raw)).decode()}\n".encode()


CONSISTENCY = "/api/v1/funds/USDT/log/consistency?first=10&second=16"
INCLUSION = "/api/v1/funds/USDT/log/inclusion?seq=2&size=16"


@pytest.mark.parametrize(
    "forgery, message",
    [
        ("bad signature", "signature by testserver/log does not verify"),
        ("another key", "not signed by the pinned key testserver/log+9170cae5"),
        ("another origin", "the checkpoint is of the log 'evil.example/log/USDT'"),
        ("rolled back", "checkpoint of size 9 does not extend the one of size 10"),
        ("another root, same size", "checkpoint of size 10 does not extend the one of size 10"),
        ("consistency truncated", "checkpoint of size 16 does not extend the one of size 10"),
        ("consistency extended", "checkpoint of size 16 does not extend the one of size 10"),
        ("consistency altered", "checkpoint of size 16 does not extend the one of size 10"),
        ("inclusion truncated", "record #2 as published is not in the checkpoint of size 16"),
        ("inclusion extended", "record #2 as published is not in the checkpoint of size 16"),
        ("record altered", "record #2 as published is not in the checkpoint of size 16"),
        ("not a note", "not a signed note"),
        ("a bad line after the signature", "signature line"),
        ("an empty extension line", "empty extension line"),
        ("a size beyond any tree", "is not a tree's size"),
        ("a record dated beyond the calendar", "not a record of the public API"),
        ("proof not hashes", "is not a hash"),
    ],
)
def test_forged_checkpoints_and_proofs_are_refused(usdt_fund, site, watched, forgery, message):
    grown(usdt_fund, site)
    answers, checkpoint = site.answers, "/log/USDT/checkpoint"
    if forgery == "bad signature":
        answers[checkpoint] = (200, _flip_signature(answers[checkpoint][1]))
    elif forgery == "another key":
        answers[checkpoint] = (
            200,
            _signed(signer=Signer.generate("testserver/log"), fund=usdt_fund),
        )
    elif forgery == "another origin":
        answers[checkpoint] = (200, _signed(origin="evil.example/log/USDT", fund=usdt_fund))
    elif forgery == "rolled back":
        leaves = [tlog.leaf_hash(e) for e in entries_of(usdt_fund)][:9]
        answers[checkpoint] = (200, _signed(size=9, root=tlog.tree_root(leaves)))
        site.take("/api/v1/funds/USDT/log/inclusion?seq=2&size=9")
    elif forgery == "another root, same size":
        answers[checkpoint] = (200, _signed(size=10, root=hashlib.sha256(b"x").digest()))
        site.take("/api/v1/funds/USDT/log/inclusion?seq=2&size=10")
    elif forgery.startswith("consistency"):
        proof = site.json(CONSISTENCY)
        if forgery.endswith("truncated"):
            proof["proof"] = proof["proof"][:-1]
        elif forgery.endswith("extended"):
            proof["proof"].append("ab" * 32)
        else:
            proof["proof"][0] = "cd" * 32
        site.put_json(CONSISTENCY, proof)
    elif forgery.startswith("inclusion"):
        proof = site.json(INCLUSION)
        proof["proof"] = (
            proof["proof"][:-1] if forgery.endswith("truncated") else [*proof["proof"], "ab" * 32]
        )
        site.put_json(INCLUSION, proof)
    elif forgery == "record altered":
        record = site.json("/api/v1/funds/USDT/records/2")
        record["amount"] = "95.00000000"
        site.put_json("/api/v1/funds/USDT/records/2", record)
    elif forgery == "not a note":
        answers[checkpoint] = (200, b"testserver/log/USDT\n16\nAAAA\n")
    elif forgery == "a bad line after the signature":
        answers[checkpoint] = (200, answers[checkpoint][1] + b"not a signature\n")
    elif forgery == "an empty extension line":
        text = Checkpoint(
            ORIGIN, 16, tlog.tree_root([tlog.leaf_hash(e) for e in entries_of(usdt_fund)])
        ).text()
        answers[checkpoint] = (200, SIGNER.sign(text + "\n").encode())
    elif forgery == "a size beyond any tree":
        answers[checkpoint] = (200, _signed(size=2**63, root=b"\x00" * 32))
    elif forgery == "a record dated beyond the calendar":
        record = site.json("/api/v1/funds/USDT/records/2")
        record["created_at"] = "9999-12-31T23:59:59-01:00"
        site.put_json("/api/v1/funds/USDT/records/2", record)
    elif forgery == "proof not hashes":
        proof = site.json(CONSISTENCY)
        proof["proof"] = [1, 2]
        site.put_json(CONSISTENCY, proof)
    run = monitor(site, watched)
    assert run.returncode == 1, run.stdout + run.stderr
    assert message in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert kept_size(watched) == 10


@pytest.mark.parametrize("funds", [b'{"results": []}', b"[1]", b"[{}]", b'[{"asset": 5}]', b"x"])
def test_a_list_of_funds_that_is_not_one_is_refused(usdt_fund, site, tmp_path, funds):
    site.take("/log/vkey")
    site.answers["/api/v1/funds"] = (200, funds)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--monitor", str(tmp_path / "s.json"), site.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "cannot check" in run.stderr


def test_a_key_other_than_the_pinned_one_is_refused(usdt_fund, site, watched):
    other = Signer.generate("testserver/log").verifier.vkey
    run = monitor(site, watched, "--vkey", other)
    assert run.returncode == 1 and "the state file pins the key" in run.stderr


@pytest.mark.parametrize(
    "content",
    ["", "{", "[]", '{"format": "other"}',
     '{"format": "insurance-fund-monitor/1", "logs": {"USDT": {"size": -1, "root": "AA=="}}}',
     '{"format": "insurance-fund-monitor/1", "logs": {"USDT": {"size": 1, "root": "%%%"}}}'],
)  # fmt: skip
def test_a_damaged_state_file_is_refused(site, tmp_path, content):
    state = tmp_path / "state.json"
    state.write_text(content)
    run = monitor(site, state, "--vkey", VKEY)
    assert run.returncode == 1 and "state file" in run.stderr and "Traceback" not in run.stderr


def test_without_a_key_the_served_one_is_pinned_with_a_warning(usdt_fund, site, tmp_path):
    deposit(usdt_fund, "1")
    checkpoint_sign(fund=usdt_fund)
    site_now(site, record=1)
    state = tmp_path / "state.json"
    run = monitor(site, state, record=1)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pinning the key the site serves now" in run.stderr
    assert json.loads(state.read_text())["vkey"] == VKEY


def test_the_site_serves_the_script_with_its_digest(db):
    answer = Client().get("/check_ledger.py")
    assert answer.content == SCRIPT.read_bytes()
    assert answer["X-Content-SHA256"] == hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    assert "attachment" in answer["Content-Disposition"]


@pytest.mark.django_db(transaction=True)
def test_the_chain_check_compares_the_records_with_the_signed_log(usdt_fund, live_server):
    """A site that shows the record list a rewritten history (every hash recomputed: the chain
    holds) but signed another: the plain check names it."""
    from django.core.cache import cache

    for i in range(10):
        deposit(usdt_fund, "100", reason=f"deposit {i}")
    checkpoint_sign(fund=usdt_fund)

    def check():
        return subprocess.run(
            [sys.executable, str(SCRIPT), live_server.url, "USDT"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    intact = check()
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "10 records, chain intact" in intact.stdout
    assert "they give the root of the checkpoint of size 10 signed by testserver/log+9170cae5" in (
        intact.stdout
    )
    rewrite_history(usdt_fund, seq=3, delta_units=-5 * 10**8, tree=False)  # the list only
    cache.clear()
    rewritten = check()
    assert rewritten.returncode == 1
    assert "the records do not give the root of the signed checkpoint of size 10" in (
        rewritten.stdout
    )
