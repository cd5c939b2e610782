"""docs/check_ledger.py --proof FILE URL must not trust what it verifies: a trader's proof is
checked against the figures the site the user names publishes (its cycle and its fund), never
against the proof's own cycle_url, and a malformed file is reported in one line, never with a
traceback. The rows marked OLD were accepted by the script before it took its figures from the
site (the precision and the amounts' writing were the proof's own, leaf_text was not checked, and
without a URL the cycle came from the proof's cycle_url)."""

import copy
import hashlib
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from fund.merkle import root_from_path
from fund.models import Apportionment, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import Statement, TraderAccount
from tests.factories import UserFactory
from tests.helpers import as_settled_before, at, book_loss, deposit, report_profits

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
RANK = 3  # of 5 participants: a path of three steps, right, left, right
# Where nothing listens: the malformed files are refused before anything is fetched.
NOWHERE = "http://127.0.0.1:9"


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def settled_cycle(linear, day: int, profits: dict[int, str]) -> SettlementCycle:
    book_loss(linear, "500", at(day, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(day))
    report_profits(cycle, linear, profits)
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    assert cycle.status == "settled" and cycle.participant_count == 5, cycle.participant_count
    as_settled_before(cycle)  # these are the proofs of form 1 (test_check_ledger_cycles: form 2)
    return cycle


def downloaded_proof(cycle: SettlementCycle, rank: int) -> dict:
    """The proof the participant at `rank` downloads from their statement."""
    apportionment = Apportionment.objects.select_related("position").get(cycle=cycle, rank=rank)
    user = UserFactory()
    TraderAccount.objects.filter(pk=apportionment.position.account_id).update(user=user)
    client = APIClient()
    client.force_login(user)
    statement = Statement.objects.get(apportionment=apportionment)
    response = client.get(f"/api/v1/me/statements/{statement.id}/proof")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@dataclass
class Books:
    url: str  # the site the user names
    cycle: SettlementCycle
    proof: dict  # rank 3's proof, with the site's own cycle_url
    other: dict  # rank 3's proof in another cycle of the same fund


@pytest.fixture
def books(usdt_fund, linear, live_server) -> Books:
    deposit(usdt_fund, "1000")
    cycle = settled_cycle(linear, 0, {1: "500", 2: "480", 3: "460", 4: "440", 5: "420"})
    other = settled_cycle(linear, 1, {11: "510", 12: "470", 13: "450", 14: "430", 15: "410"})
    proof = downloaded_proof(cycle, RANK)
    assert proof["precision"] == 8 and [s["side"] for s in proof["path"]] == [
        "right",
        "left",
        "right",
    ]
    proof["cycle_url"] = f"{live_server.url}/api/v1/cycles/{cycle.id}"
    return Books(live_server.url, cycle, proof, downloaded_proof(other, RANK))


@pytest.fixture
def forger():
    """A server the forger controls: it publishes whatever cycle it is given, and counts the
    requests it gets."""
    state = {"cycle": {}, "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"].append(self.path)
            body = json.dumps(state["cycle"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()


def releaf(proof: dict) -> dict:
    """The proof with leaf_text and leaf recomputed from its other fields, as a careful forger
    would."""
    fields = ("asset", "cycle", "rank", "position_id", "profit_units", "amount_units")
    proof["leaf_text"] = "|".join(str(proof[k]) for k in fields)
    proof["leaf"] = hashlib.sha256(b"\x00" + proof["leaf_text"].encode()).hexdigest()
    return proof


def flip_digit(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def forged_in_full(proof: dict) -> dict:
    """A proof of ten times the apportionment, consistent with itself: its leaf is recomputed and
    the real siblings are folded up to the root the proof then names."""
    proof["amount_units"] *= 10
    proof["amount"] = f"{Decimal(proof['amount_units']).scaleb(-8):.8f}"
    releaf(proof)
    proof["root"] = root_from_path(bytes.fromhex(proof["leaf"]), proof["path"])
    return proof


def the_forgers_cycle(proof: dict) -> dict:
    return {
        "id": proof["cycle"],
        "asset": proof["asset"],
        "status": "settled",
        "participant_count": proof["participant_count"],
        "apportionment_root": proof["root"],
    }


def _flipped_side(p, ctx):
    p["path"][0]["side"] = "left"


def _swapped_siblings(p, ctx):
    p["path"][0]["hash"], p["path"][1]["hash"] = p["path"][1]["hash"], p["path"][0]["hash"]


def _flipped_sibling_hash(p, ctx):
    p["path"][1]["hash"] = flip_digit(p["path"][1]["hash"])


def _reordered(p, ctx):
    p["path"].reverse()  # right, left, right again: the shape fits, the fold does not


def _truncated(p, ctx):
    p["path"].pop()


def _extended(p, ctx):
    p["path"].append({"side": "right", "hash": p["leaf"]})


def _another_cycles_root(p, ctx):
    p["root"] = ctx.other["root"]


def _moved_to_another_cycle(p, ctx):
    p["cycle"], p["root"] = ctx.other["cycle"], ctx.other["root"]
    releaf(p)


def _another_cycles_proof(p, ctx):
    p.clear()
    p.update({**ctx.other, "cycle": ctx.books.cycle.id, "root": ctx.books.proof["root"]})
    releaf(p)


def _rank_edit(p, ctx):
    p["rank"] = 4


def _rank_edit_releafed(p, ctx):
    p["rank"] = 4
    releaf(p)


def _rank_beyond_count(p, ctx):
    p["rank"] = 6
    releaf(p)


def _count_up(p, ctx):
    p["participant_count"] = 6


def _count_down(p, ctx):
    p["participant_count"] = 4


def _precision_edit(p, ctx):  # OLD: printed an apportionment 100 times the real one
    p["precision"] = 6
    for name in ("profit", "amount"):
        p[name] = f"{Decimal(p[f'{name}_units']).scaleb(-6):.6f}"


def _amount_edit(p, ctx):
    p["amount"], p["amount_units"] = "1.00000000", 10**8


def _amount_edit_releafed(p, ctx):
    _amount_edit(p, ctx)
    releaf(p)


def _amount_leading_zero(p, ctx):  # OLD: accepted, and printed as written
    p["amount"] = "0" + p["amount"]


def _amount_more_places(p, ctx):  # OLD: accepted, and printed as written
    p["amount"] += "0"


def _leaf_text_edit(p, ctx):  # OLD: leaf_text was not compared with the fields
    p["leaf_text"] = p["leaf_text"].rsplit("|", 1)[0] + "|99999999999999"


def _leaf_edit(p, ctx):
    p["leaf"] = flip_digit(p["leaf"])


def _asset_edit(p, ctx):
    p["asset"] = "USDC"
    releaf(p)


def _unknown_cycle(p, ctx):
    p["cycle"] = 999_999
    releaf(p)


def _foreign_cycle_url_server(p, ctx):  # OLD without a URL: the forger's server vouched for it
    forged_in_full(p)
    ctx.forger["cycle"] = the_forgers_cycle(p)
    p["cycle_url"] = f"{ctx.forger['url']}/api/v1/cycles/{p['cycle']}"


def _foreign_cycle_url_file(p, ctx):  # OLD without a URL: the forger's file vouched for it
    forged_in_full(p)
    forged = ctx.tmp_path / "cycle.json"
    forged.write_text(json.dumps(the_forgers_cycle(p)))
    p["cycle_url"] = forged.as_uri()


NOT_LEAD = "the proof's path does not lead to the root cycle {cycle} publishes"
NOT_FIT = "the proof's path does not fit its rank among the participants"
NOT_ROOT = "the proof's root is not the apportionment_root cycle {cycle} publishes"
NOT_LEAF_TEXT = "the proof's leaf_text is not USDT|{cycle}|4|"
NOT_AMOUNT_FORM = "the proof's amount '0{amount}' is not written as USDT's amounts are"
FORGERIES = [
    ("flipped sibling side", _flipped_side, NOT_FIT),
    ("swapped siblings", _swapped_siblings, NOT_LEAD),
    ("a changed sibling hash", _flipped_sibling_hash, NOT_LEAD),
    ("reordered path", _reordered, NOT_LEAD),
    ("truncated path", _truncated, NOT_FIT),
    ("extended path", _extended, "the proof's path is longer than its participants allow"),
    ("another cycle's root", _another_cycles_root, NOT_ROOT),
    (
        "moved to another cycle with its root",
        _moved_to_another_cycle,
        "the proof's path does not lead to the root cycle {other} publishes",
    ),
    ("another cycle's proof relabelled", _another_cycles_proof, NOT_LEAD),
    ("rank edited", _rank_edit, NOT_LEAF_TEXT),
    ("rank edited, leaf recomputed", _rank_edit_releafed, NOT_FIT),
    (
        "rank beyond the count",
        _rank_beyond_count,
        "the proof's rank 6 is not among the cycle's 5 participants",
    ),
    (
        "count raised",
        _count_up,
        "the proof's participant_count 6 is not the 5 participants cycle {cycle} publishes",
    ),
    (
        "count lowered",
        _count_down,
        "the proof's participant_count 4 is not the 5 participants cycle {cycle} publishes",
    ),
    (
        "OLD: precision edited, amounts rewritten",
        _precision_edit,
        "the proof's precision 6 is not USDT's published precision 8",
    ),
    ("amount edited", _amount_edit, "the proof's leaf_text is not USDT|{cycle}|3|3|"),
    ("amount edited, leaf recomputed", _amount_edit_releafed, NOT_LEAD),
    ("OLD: amount with a leading zero", _amount_leading_zero, NOT_AMOUNT_FORM),
    (
        "OLD: amount with a ninth place",
        _amount_more_places,
        "the proof's amount '{amount}0' is not written as USDT's amounts are",
    ),
    ("OLD: leaf_text edited", _leaf_text_edit, "the proof's leaf_text is not USDT|{cycle}|3|3|"),
    ("leaf edited", _leaf_edit, "the proof's leaf is not the hash of its apportionment"),
    (
        "asset edited",
        _asset_edit,
        "/api/v1/cycles/{cycle} is 'USDT' cycle {cycle}, not the proof's USDC cycle {cycle}",
    ),
    ("unknown cycle", _unknown_cycle, "publishes no cycle 999999"),
    ("OLD: foreign cycle_url, a server", _foreign_cycle_url_server, NOT_ROOT),
    ("OLD: foreign cycle_url, a file", _foreign_cycle_url_file, NOT_ROOT),
]


@dataclass
class Context:
    books: Books
    other: dict
    forger: dict
    tmp_path: Path


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "forge, expected", [row[1:] for row in FORGERIES], ids=[row[0] for row in FORGERIES]
)
def test_a_forged_proof_is_broken(books, forger, tmp_path, forge, expected):
    proof = copy.deepcopy(books.proof)
    forge(proof, Context(books, copy.deepcopy(books.other), forger, tmp_path))
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    result = run_script("--proof", path, books.url)
    message = expected.format(
        cycle=books.cycle.id, other=books.other["cycle"], amount=books.proof["amount"]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("proof: BROKEN: ") and message in result.stdout, result.stdout
    assert "included" not in result.stdout and "Traceback" not in result.stderr
    assert forger["requests"] == []  # the proof's cycle_url is never followed
    if proof["cycle_url"] != books.proof["cycle_url"]:
        assert "warning: the proof names its cycle at " in result.stderr


@pytest.mark.django_db(transaction=True)
def test_an_intact_proof_is_included_in_the_published_root(books, tmp_path):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(books.proof))
    result = run_script("--proof", path, books.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        f"USDT cycle {books.cycle.id}: apportionment of {books.proof['amount']} "
        f"(rank 3, position 3) is included in the root {books.cycle.apportionment_root} "
        f"that {books.proof['cycle_url']} publishes\n"
    )
    # Downloaded under another host name, it names another cycle_url: a warning, the same check.
    path.write_text(json.dumps({**books.proof, "cycle_url": "http://testserver/api/v1/cycles/1"}))
    result = run_script("--proof", path, books.url + "/")
    assert result.returncode == 0 and "is included" in result.stdout, result.stdout
    assert result.stderr.startswith(
        "warning: the proof names its cycle at 'http://testserver/api/v1/cycles/1'; it is checked"
        f" against {books.url}/api/v1/cycles/{books.cycle.id}, the site you named, instead"
    )


@pytest.mark.django_db(transaction=True)
def test_the_site_must_be_named_and_reachable(books, forger, tmp_path):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(books.proof))
    cases = [
        (["--proof", path], "usage: python3 check_ledger.py --proof FILE URL"),
        (["--proof", path, "file:///tmp"], "'file:///tmp' is not a site's address"),
        (["--proof", path, "fund.example.com"], "'fund.example.com' is not a site's address"),
        (["--proof", path, NOWHERE], f"proof: cannot check it: {NOWHERE}/api/v1/cycles/"),
        (["--proof", path, books.url + "/nothing-here"], None),
        (["--proof", path, forger["url"]], "/api/v1/cycles/"),
    ]
    forger["cycle"] = ["not", "a", "cycle"]
    for args, message in cases:
        result = run_script(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "included" not in result.stdout
        if message is None:  # a site without that cycle
            assert "proof: BROKEN: " in result.stdout and "publishes no cycle" in result.stdout
        else:
            assert message in result.stderr, (args, result.stderr)
            assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    assert "the answer is not the public API's" in result.stderr


PROOF_TEXT = json.dumps(
    {
        "format": "insurance-fund-apportionment-proof/1",
        "asset": "USDT",
        "precision": 8,
        "cycle": 1,
        "rank": 1,
        "position_id": 1,
        "profit": "600.00000000",
        "amount": "266.66666667",
        "profit_units": 60000000000,
        "amount_units": 26666666667,
        "participant_count": 2,
        "leaf_text": "USDT|1|1|1|60000000000|26666666667",
        "leaf": "a" * 64,
        "path": [{"side": "right", "hash": "b" * 64}],
        "root": "c" * 64,
        "cycle_url": "http://127.0.0.1:9/api/v1/cycles/1",
    }
)
INTACT = json.loads(PROOF_TEXT)


def edited(**fields):
    return json.dumps({**INTACT, **fields})


def without(name):
    return json.dumps({k: v for k, v in INTACT.items() if k != name})


MALFORMED = [
    ("empty", b"", "not JSON (Expecting value at line 1, column 1)"),
    ("text", b"my proof", "not JSON"),
    ("not UTF-8", b"\xff\xfe{}", "not UTF-8 text"),
    ("a NUL byte", b"\x00" + PROOF_TEXT.encode(), "not JSON"),
    ("truncated", PROOF_TEXT[:-20], "not JSON"),
    ("a list", "[]", "a proof is a JSON object, not a list"),
    ("a number", "42", "a proof is a JSON object, not the number 42"),
    ("deep", "[" * 100_000 + "]" * 100_000, "nested deeper than any proof"),
    ("huge", " " * 1_000_001, "larger than any proof"),
    ("a 5000-digit rank", PROOF_TEXT.replace('"rank": 1', '"rank": ' + "9" * 5000), "longer"),
    ("duplicate field", PROOF_TEXT.replace('"rank": 1', '"rank": 1, "rank": 2'), "twice"),
    ("missing path", without("path"), 'field "path": missing'),
    ("missing leaf", without("leaf"), 'field "leaf": missing'),
    ("missing cycle_url", without("cycle_url"), 'field "cycle_url": missing'),
    ("unknown field", edited(note="trust me"), "field 'note': no proof has such a field"),
    ("other format", edited(format="other/2"), 'field "format": must be'),
    ("asset with a NUL", edited(asset="USDT\x00"), 'field "asset": must be an asset code'),
    ("lowercase asset", edited(asset="usdt"), 'field "asset": must be an asset code'),
    ("asset as a path", edited(asset="../admin"), 'field "asset"'),
    ("precision as text", edited(precision="8"), 'field "precision": must be a whole number'),
    ("negative precision", edited(precision=-1), 'field "precision": must be from 0 to 18'),
    ("cycle as text", edited(cycle="1"), 'field "cycle": must be a whole number, not the text'),
    ("cycle zero", edited(cycle=0), 'field "cycle": must be from 1'),
    ("rank true", edited(rank=True), 'field "rank": must be a whole number, not true'),
    ("rank null", edited(rank=None), 'field "rank": must be a whole number, not null'),
    ("rank 1.5", PROOF_TEXT.replace('"rank": 1', '"rank": 1.5'), 'field "rank"'),
    ("rank NaN", PROOF_TEXT.replace('"rank": 1', '"rank": NaN'), 'field "rank"'),
    ("rank 1e400", PROOF_TEXT.replace('"rank": 1', '"rank": 1e400'), 'field "rank"'),
    ("huge rank", edited(rank=10**40), 'field "rank": must be from 1 to'),
    ("huge count", edited(participant_count=2**64), 'field "participant_count"'),
    ("huge units", edited(amount_units=10**18), 'field "amount_units": must be from 0'),
    ("negative units", edited(profit_units=-1), 'field "profit_units"'),
    ("amount a number", PROOF_TEXT.replace('"266.66666667"', "266.66666667"), 'field "amount"'),
    ("amount in words", edited(amount="ten"), 'field "amount": must be decimal text'),
    ("amount negative", edited(amount="-1.00000000"), 'field "amount"'),
    ("amount exponent", edited(amount="2.6666666667E+2"), 'field "amount"'),
    ("amount Unicode digits", edited(amount="٢٦٦.66666667"), 'field "amount"'),
    ("profit with a newline", edited(profit="600.00000000\n"), 'field "profit"'),
    ("leaf_text a list", edited(leaf_text=[]), 'field "leaf_text"'),
    ("leaf too short", edited(leaf="a" * 63), 'field "leaf": must be 64 lowercase hex digits'),
    ("leaf too long", edited(leaf="a" * 65), 'field "leaf"'),
    ("leaf uppercase", edited(leaf="A" * 64), 'field "leaf"'),
    ("leaf not hex", edited(leaf="g" * 64), 'field "leaf"'),
    ("root with a NUL", edited(root="c" * 63 + "\x00"), 'field "root"'),
    ("path an object", edited(path={}), 'field "path": must be a list of steps'),
    ("path too long", edited(path=[{"side": "left", "hash": "b" * 64}] * 65), 'field "path"'),
    ("step a string", edited(path=["b" * 64]), 'field "path", step 1'),
    ("step extra key", edited(path=[{"side": "left", "hash": "b" * 64, "x": 1}]), "step 1"),
    ("side up", edited(path=[{"side": "up", "hash": "b" * 64}]), 'must be "left" or "right"'),
    ("side a list", edited(path=[{"side": ["left"], "hash": "b" * 64}]), '"left" or "right"'),
    ("side capitalised", edited(path=[{"side": "Left", "hash": "b" * 64}]), "the side must"),
    ("step hash short", edited(path=[{"side": "left", "hash": "b" * 62}]), "step 1: the hash"),
    ("step hash a number", edited(path=[{"side": "left", "hash": 7}]), "step 1: the hash"),
    ("cycle_url a number", edited(cycle_url=1), 'field "cycle_url": must be text'),
]


@pytest.mark.parametrize(
    "content, message", [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_a_malformed_proof_is_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "proof.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    result = run_script("--proof", path, NOWHERE)
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: not a valid proof: "), lines
    assert message in lines[0], lines[0]
    assert len(lines[0]) < 300 and lines[0].isprintable()


def test_a_missing_file_is_named(tmp_path):
    result = run_script("--proof", tmp_path / "absent.json", NOWHERE)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    absent = tmp_path / "absent.json"
    assert result.stderr == (
        f"{absent}: not a valid proof: cannot be read (No such file or directory)\n"
    )
