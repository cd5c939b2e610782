"""A fund's transparency log: tiles kept by the ledger, roots and proofs read from them, signed
checkpoints that always extend each other, and the C2SP tlog-tiles endpoints."""

import base64
import hashlib
import random

import pytest
from django.test import Client
from pymerkle import InmemoryTree

from fund import tlog
from fund.chain import record_entry
from fund.models import FundRecord, LogCheckpoint, LogTile
from fund.services.transparency import (
    LogInconsistent,
    checkpoint_sign,
    checkpoints_sign_all,
    log_tree,
)
from fund.signednote import Checkpoint, NoteError, Verifier, checkpoint_open
from fund.tasks import sign_log_checkpoints
from fund.views_log import tile_index_path
from tests.helpers import deposit, tamper

VKEY = "testserver/log+9170cae5+AcZkiqKScSzylsonKdqUtcNrxhZcffBIc6r5/+MqyF90"
VERIFIER = Verifier.from_vkey(VKEY)
SKEY = "PRIVATE+KEY+testserver/log+9170cae5+AYBIQc6ZDRplqHWH5Z3UJDtMJz56geZGDt/BP1gjWb2X"


def entries_of(fund) -> list[bytes]:
    """Every record's canonical bytes, recomputed from the records as the public API shows them."""
    rows = FundRecord.objects.filter(fund=fund).order_by("seq").select_related("takeover")
    return [
        record_entry(
            asset=fund.asset.code,
            precision=fund.asset.precision,
            seq=r.seq,
            kind=r.kind,
            amount_units=r.amount_units,
            balance_after_units=r.balance_after_units,
            created_at=r.created_at,
            takeover=r.takeover.external_id if r.takeover else "",
            cycle_id=r.cycle_id,
            corrects_id=r.corrects_id,
            reason=r.reason,
        )  # fmt: skip
        for r in rows
    ]


def leaves_of(fund) -> list[bytes]:
    return [tlog.leaf_hash(e) for e in entries_of(fund)]


# The tiles, without a database.


@pytest.mark.parametrize("seed", range(3))
def test_tiles_appended_in_any_batches_give_the_trees_roots_and_proofs(seed):
    rng = random.Random(seed)
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(70_000)]  # three levels
    stored: dict[tuple[int, int], bytes] = {}
    size = 0
    while size < len(leaves):
        batch = leaves[size : size + rng.choice([1, 3, 255, 256, 257, 1000, 9000])]
        partials = {lv: data for (lv, _), data in stored.items() if len(data) < 256 * 32}
        partials = {lv: d for lv, d in partials.items() if d}
        for level, index, data in tlog.tile_updates(size, partials, batch):
            old = stored.get((level, index), b"")
            assert data.startswith(old)  # a tile only grows
            stored[(level, index)] = data
        size += len(batch)
        tree = tlog.TiledTree(size, lambda lv, ix: stored.get((lv, ix), b""))
        if rng.random() < 0.05 or size == len(leaves):
            assert tree.root() == tlog.tree_root(leaves[:size])
    tree = tlog.TiledTree(len(leaves), lambda lv, ix: stored.get((lv, ix), b""))
    root = tree.root()
    for index in rng.sample(range(len(leaves)), 20):
        proof = tree.inclusion_proof(index)
        tlog.verify_inclusion(index, len(leaves), leaves[index], proof, root)
    for first in [1, 2, 255, 256, 257, 65_536, 65_537, *rng.sample(range(1, 70_000), 10)]:
        proof = tree.consistency_proof(first)
        tlog.verify_consistency(first, len(leaves), proof, tree.hash(0, first), root)
        assert tree.hash(0, first) == tlog.tree_root(leaves[:first])


def test_tiled_proofs_are_pymerkles_too():
    """Against an implementation not written here: pymerkle's RFC 9162 tree of the same entries."""
    entries = [f"entry {i}".encode() for i in range(600)]
    reference = InmemoryTree(algorithm="sha256")
    for e in entries:
        reference.append_entry(e)
    stored: dict = {}
    for level, index, data in tlog.tile_updates(0, {}, [tlog.leaf_hash(e) for e in entries]):
        stored[(level, index)] = data
    tree = tlog.TiledTree(600, lambda lv, ix: stored.get((lv, ix), b""))
    assert tree.root() == reference.get_root(600)
    for size in (1, 7, 256, 300, 600):
        sub = tlog.TiledTree(size, tree._fetch)
        assert sub.root() == reference.get_root(size)
        for index in (0, size // 2, size - 1):
            assert sub.inclusion_proof(index) == reference.prove_inclusion(index + 1, size).path[1:]


def test_a_tile_that_lacks_hashes_is_named():
    tree = tlog.TiledTree(300, lambda lv, ix: b"\x00" * 32 * 10)
    with pytest.raises(tlog.ProofError, match="incomplete"):
        tree.root()


def test_the_tile_index_is_written_as_c2sp_says():
    assert tile_index_path(0) == "000"
    assert tile_index_path(7) == "007"
    assert tile_index_path(1000) == "x001/000"
    assert tile_index_path(1234067) == "x001/x234/067"


# Kept by the ledger.


def test_the_ledger_keeps_the_tree_of_its_records(usdt_fund):
    for i in range(300):
        deposit(usdt_fund, "1", reason=f'deposit {i} \u00e9\u4e2d "quoted"')
    leaves = leaves_of(usdt_fund)
    assert log_tree(fund=usdt_fund, size=300).root() == tlog.tree_root(leaves)
    tiles = dict(LogTile.objects.filter(fund=usdt_fund, level=0).values_list("index", "width"))
    assert tiles == {0: 256, 1: 44}
    assert LogTile.objects.get(fund=usdt_fund, level=1).width == 1  # the full tile's root


# Checkpoints.


def test_a_checkpoint_is_signed_only_when_the_log_grew(usdt_fund):
    deposit(usdt_fund, "5")
    first = checkpoint_sign(fund=usdt_fund)
    assert checkpoint_sign(fund=usdt_fund) == first
    checkpoint = checkpoint_open(first.note, VERIFIER, "testserver/log/USDT")
    assert (checkpoint.size, checkpoint.root) == (1, tlog.tree_root(leaves_of(usdt_fund)))
    deposit(usdt_fund, "6")
    assert sign_log_checkpoints() == {"USDT": 2}
    assert list(LogCheckpoint.objects.values_list("size", flat=True)) == [2, 1]


def test_the_log_never_signs_a_checkpoint_that_does_not_extend_the_last(usdt_fund):
    for i in range(5):
        deposit(usdt_fund, "5", reason=f"r{i}")
    checkpoint_sign(fund=usdt_fund)
    deposit(usdt_fund, "6")
    # An intruder rewrites the second leaf (as a rewritten record's would be) in the tile.
    tile = bytes(LogTile.objects.get(fund=usdt_fund, level=0, index=0).hashes)
    forged = tile[:32] + hashlib.sha256(b"forged").digest() + tile[64:]
    tamper("UPDATE fund_logtile SET hashes = %s WHERE fund_id = %s AND level = 0",
           [forged, usdt_fund.pk])  # fmt: skip
    with pytest.raises(LogInconsistent, match="size 6 does not extend the checkpoint of size 5"):
        checkpoint_sign(fund=usdt_fund)
    assert checkpoints_sign_all() == {}  # the beat logs it and signs nothing either
    assert list(LogCheckpoint.objects.values_list("size", flat=True)) == [5]


def test_a_settlement_signs_a_checkpoint(world):
    latest = LogCheckpoint.objects.filter(fund=world.cycle.fund).latest()
    assert latest.size == FundRecord.objects.filter(fund=world.cycle.fund).count()


def test_the_beat_signs_each_minute():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["sign-log-checkpoints"]["task"] == (
        "fund.tasks.sign_log_checkpoints"
    )


# The endpoints.


@pytest.fixture
def log_of_300(usdt_fund):
    for i in range(300):
        deposit(usdt_fund, "1", reason=f"deposit {i}")
    checkpoint_sign(fund=usdt_fund)
    return usdt_fund


def test_vkey_and_checkpoint_are_served_as_text(log_of_300):
    client = Client()
    answer = client.get("/log/vkey")
    assert answer.content.decode() == VKEY + "\n"
    answer = client.get("/log/USDT/checkpoint")
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert answer["Cache-Control"] == "public, max-age=5"
    checkpoint = checkpoint_open(answer.content.decode(), VERIFIER, "testserver/log/USDT")
    assert checkpoint.size == 300
    assert client.get("/log/usdt/checkpoint").status_code == 200
    assert client.get("/log/EUR/checkpoint").status_code == 404
    assert client.post("/log/USDT/checkpoint").status_code == 405


def test_tiles_and_entry_bundles_rebuild_the_signed_root(log_of_300):
    """What a tlog client does: the checkpoint, then tiles and entries, then the root."""
    client = Client()
    checkpoint = Checkpoint.parse(
        client.get("/log/USDT/checkpoint").content.decode().split("\n\n")[0] + "\n"
    )
    full = client.get("/log/USDT/tile/0/000")
    assert full["Cache-Control"] == "public, max-age=31536000, immutable"
    assert full["Content-Type"] == "application/octet-stream"
    partial = client.get("/log/USDT/tile/0/001.p/44")
    level1 = client.get("/log/USDT/tile/1/000.p/1").content
    assert level1 == tlog._perfect_root(full.content)
    leaves = [full.content[i : i + 32] for i in range(0, 256 * 32, 32)]
    leaves += [partial.content[i : i + 32] for i in range(0, 44 * 32, 32)]
    assert tlog.tree_root(leaves) == checkpoint.root
    bundle = client.get("/log/USDT/tile/entries/000").content
    bundle += client.get("/log/USDT/tile/entries/001.p/44").content
    entries, at = [], 0
    while at < len(bundle):
        length = int.from_bytes(bundle[at : at + 2], "big")
        entries.append(bundle[at + 2 : at + 2 + length])
        at += 2 + length
    assert [tlog.leaf_hash(e) for e in entries] == leaves
    assert entries[0].startswith(b'["USDT","1","deposit","1.00000000","1.00000000","')
    assert client.get("/log/USDT/tile/0/001.p/20").content == partial.content[: 20 * 32]


@pytest.mark.parametrize(
    "path",
    [
        "0/001",  # not full yet
        "0/001.p/45",  # wider than the log
        "0/002.p/1",
        "2/000.p/1",
        "0/1",  # not three digits
        "0/x000/001",  # not canonical
        "64/000",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/",
        "0/-01",
        "0/\u0660\u0660\u0661",  # Arabic-Indic digits
        "entries/002",
        "entries/001",
        "entries/x000/000",
        "../0/000",
    ],
)
def test_no_such_tile_is_a_404(log_of_300, path):
    assert Client().get(f"/log/USDT/tile/{path}").status_code == 404


def test_a_nul_in_a_tile_path_is_a_400(log_of_300):
    assert Client().get("/log/USDT/tile/0/000\x00").status_code == 400


def test_json_proofs_verify(log_of_300):
    client = Client()
    root = tlog.tree_root(leaves_of(log_of_300))
    answer = client.get("/api/v1/funds/USDT/log/inclusion", {"seq": "17"}).json()
    assert (answer["size"], answer["index"], answer["root"]) == (300, 16, root.hex())
    assert answer["origin"] == "testserver/log/USDT"
    leaf = tlog.leaf_hash(answer["entry"].encode())
    assert leaf.hex() == answer["leaf_hash"]
    tlog.verify_inclusion(16, 300, leaf, [bytes.fromhex(h) for h in answer["proof"]], root)
    answer = client.get("/api/v1/funds/USDT/log/consistency", {"first": 100}).json()
    proof = [bytes.fromhex(h) for h in answer["proof"]]
    first_root = tlog.tree_root(leaves_of(log_of_300)[:100])
    assert answer["first_root"] == first_root.hex()
    tlog.verify_consistency(100, 300, proof, first_root, root)
    same = client.get("/api/v1/funds/USDT/log/consistency", {"first": 300, "second": 300}).json()
    assert same["proof"] == [] and same["first_root"] == root.hex()


@pytest.mark.parametrize(
    "path, query, field",
    [
        ("inclusion", {}, "seq"),
        ("inclusion", {"seq": "0"}, "seq"),
        ("inclusion", {"seq": "301"}, "seq"),
        ("inclusion", {"seq": "5", "size": "301"}, "size"),
        ("inclusion", {"seq": "50", "size": "10"}, "size"),
        ("inclusion", {"seq": "x"}, "seq"),
        ("inclusion", {"seq": "\u0661"}, "seq"),
        ("inclusion", {"seq": "1.0"}, "seq"),
        ("inclusion", {"seq": "-1"}, "seq"),
        ("inclusion", {"seq": "9" * 30}, "seq"),
        ("inclusion", {"seq": "1\x00"}, "seq"),
        ("consistency", {}, "first"),
        ("consistency", {"first": "0"}, "first"),
        ("consistency", {"first": "301"}, "first"),
        ("consistency", {"first": "20", "second": "10"}, "second"),
        ("consistency", {"first": "20", "second": "301"}, "second"),
        ("consistency", {"first": "ten"}, "first"),
        ("consistency", {"first": "%ED%A0%80"}, "first"),
    ],
)
def test_bad_sizes_are_a_400_naming_the_field(log_of_300, path, query, field):
    answer = Client().get(f"/api/v1/funds/USDT/log/{path}", query)
    assert answer.status_code == 400, answer.content
    assert field in answer.json()


def test_no_key_no_checkpoints(settings, usdt_fund):
    settings.LOG_SIGNING_KEY = ""
    deposit(usdt_fund, "1")
    assert checkpoint_sign(fund=usdt_fund) is None
    assert Client().get("/log/vkey").status_code == 404
    assert Client().get("/log/USDT/checkpoint").status_code == 404


def test_the_signing_key_from_a_file(settings, usdt_fund, tmp_path):
    from fund.signednote import Signer

    signer = Signer.generate("fund.example.com/log")
    path = tmp_path / "key"
    path.write_text(signer.skey + "\n")
    settings.LOG_SIGNING_KEY, settings.LOG_SIGNING_KEY_FILE = "", str(path)
    settings.LOG_ORIGIN_HOST = "fund.example.com"
    deposit(usdt_fund, "1")
    note = checkpoint_sign(fund=usdt_fund).note
    assert checkpoint_open(note, signer.verifier, "fund.example.com/log/USDT").size == 1
    with pytest.raises(NoteError):
        checkpoint_open(note, VERIFIER, "fund.example.com/log/USDT")
    assert base64.b64decode(note.split()[-1])[:4] == signer.verifier.id.to_bytes(4, "big")


def test_the_migration_builds_the_tiles_of_records_booked_before_it(usdt_fund, linear):
    """0013 builds the tree of the records that exist when it runs, as the ledger keeps it."""
    import importlib

    from django.apps import apps

    from tests.helpers import at, book_loss, book_profit

    migration = importlib.import_module("fund.migrations.0013_log_tiles_checkpoints")
    for i in range(600):
        deposit(usdt_fund, "1.5", reason=f'before {i} \u00e9 "q" \\ \n')
    book_profit(linear, "3", at(0, 2))
    book_loss(linear, "1", at(0, 3))
    kept = {(t.level, t.index): bytes(t.hashes) for t in LogTile.objects.filter(fund=usdt_fund)}
    tamper("DELETE FROM fund_logtile")  # as before the migration
    migration.build_tiles(apps, None)
    built = {(t.level, t.index): bytes(t.hashes) for t in LogTile.objects.filter(fund=usdt_fund)}
    assert built == kept
    assert log_tree(fund=usdt_fund, size=601).root() == tlog.tree_root(leaves_of(usdt_fund))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_tile_only_grows_and_a_checkpoint_never_changes(usdt_fund):
    from django.db import DatabaseError, connection, transaction

    for i in range(3):
        deposit(usdt_fund, "1", reason=f"r{i}")
    checkpoint_sign(fund=usdt_fund)

    def as_the_application(sql, params=()):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL fund.allow_maintenance = 'off'")
            cursor.execute(sql, params)

    refused = [
        ("UPDATE fund_logtile SET hashes = %s", [b"\x00" * 96]),  # rewritten
        ("UPDATE fund_logtile SET hashes = substring(hashes FROM 1 FOR 64), width = 2", []),
        ('UPDATE fund_logtile SET "index" = 5', []),
        ("DELETE FROM fund_logtile", []),
        ("TRUNCATE fund_logtile CASCADE", []),
        ("UPDATE fund_logcheckpoint SET size = 2", []),
        ("UPDATE fund_logcheckpoint SET note = 'x'", []),
        ("DELETE FROM fund_logcheckpoint", []),
        ("TRUNCATE fund_logcheckpoint", []),
    ]
    for sql, params in refused:
        with pytest.raises(DatabaseError, match="append-only"):
            as_the_application(sql, params)
    grown = bytes(LogTile.objects.get(level=0).hashes) + b"\x01" * 32
    as_the_application("UPDATE fund_logtile SET hashes = %s, width = 4", [grown])  # grows: allowed
    # A tree out of step with the records stops the ledger rather than growing a wrong tree.
    with pytest.raises(ValueError, match="the partial tile of level 0 holds 4 hashes, not 3"):
        deposit(usdt_fund, "1", reason="after")


def test_a_proof_reads_its_tiles_in_one_query(usdt_fund, django_assert_num_queries):
    from django.db import transaction

    from fund.services.transparency import log_append

    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(70_000)]
    with transaction.atomic():
        log_append(fund=usdt_fund, size=0, leaves=leaves)
    tree = log_tree(fund=usdt_fund, size=70_000)
    with django_assert_num_queries(1):
        proof = tree.inclusion_proof(12_345)
    root = tlog.tree_root(leaves)
    tlog.verify_inclusion(12_345, 70_000, leaves[12_345], proof, root)
    with django_assert_num_queries(1):
        proof = log_tree(fund=usdt_fund, size=70_000).consistency_proof(66_000)
    tlog.verify_consistency(66_000, 70_000, proof, tlog.tree_root(leaves[:66_000]), root)


def test_one_record_by_seq(log_of_300):
    client = Client()
    assert client.get("/api/v1/funds/USDT/records/17").json()["seq"] == 17
    for seq in ("0", "301", "9" * 40):
        assert client.get(f"/api/v1/funds/USDT/records/{seq}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_checks_the_log_against_the_records(usdt_fund):
    from tests.helpers import verify_ledger_output

    for i in range(300):
        deposit(usdt_fund, "1", reason=f"r{i}")
    checkpoint_sign(fund=usdt_fund)
    out = verify_ledger_output()
    assert "the log's tiles and signed checkpoints are the tree of these records" in out
    assert out.endswith("exit 0")
    tile = bytes(LogTile.objects.get(fund=usdt_fund, level=0, index=1).hashes)
    tamper("UPDATE fund_logtile SET hashes = %s WHERE level = 0 AND \"index\" = 1",
           [b"\x07" * 32 + tile[32:]])  # fmt: skip
    assert "USDT: BROKEN: the log's tiles are not the tree of its records" in verify_ledger_output()
    tamper('UPDATE fund_logtile SET hashes = %s WHERE level = 0 AND "index" = 1', [tile])
    tamper("UPDATE fund_logcheckpoint SET root_hash = %s", ["ab" * 32])
    out = verify_ledger_output()
    assert "the log's signed checkpoint of size 300 is not the tree of its first 300 records" in out
    assert out.endswith("exit 1")


@pytest.mark.parametrize(
    "key, file_text, message",
    [
        ("garbage", None, "not a valid skey"),
        ("", "", "is empty"),
        ("", None, "cannot be read"),
    ],
)
def test_a_bad_signing_key_never_breaks_a_page(settings, usdt_fund, tmp_path, key, file_text,
                                               message):  # fmt: skip
    from fund.checks import log_keys
    from fund.services.transparency import checkpoints_sign_all

    settings.LOG_SIGNING_KEY = key
    settings.LOG_SIGNING_KEY_FILE = ""
    if not key:
        path = tmp_path / "key"
        if file_text is not None:
            path.write_text(file_text)
        settings.LOG_SIGNING_KEY_FILE = str(path)
    deposit(usdt_fund, "1")
    client = Client()
    for path in ("/funds/USDT/", "/rules/", "/faq/", "/cycles/"):
        assert client.get(path).status_code == 200, path
    assert client.get("/log/vkey").status_code == 503
    assert checkpoints_sign_all() == {}  # logged once; nothing signed
    (error,) = log_keys(None)
    assert message in error.msg


def test_the_web_processes_may_publish_the_verifier_key_alone(settings, db):
    from fund.checks import log_keys

    settings.LOG_SIGNING_KEY, settings.LOG_VERIFIER_KEY = "", VKEY
    assert Client().get("/log/vkey").content.decode() == VKEY + "\n"
    assert log_keys(None) == []
    settings.LOG_SIGNING_KEY = SKEY
    settings.LOG_VERIFIER_KEY = "other/log+" + VKEY.split("+", 1)[1]
    assert [e.id for e in log_keys(None)] == ["fund.E002"]
    settings.LOG_VERIFIER_KEY, settings.LOG_ORIGIN_HOST = VKEY, "*.example.com"
    assert [e.id for e in log_keys(None)] == ["fund.E004"]


def test_a_reason_too_long_for_a_log_entry_is_refused(usdt_fund):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="at most 2000 characters"):
        deposit(usdt_fund, "1", reason="x" * 2001)
    assert not FundRecord.objects.exists()
