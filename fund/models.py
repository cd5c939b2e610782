"""Insurance funds: contracts, the funds' append-only ledgers, liquidation takeovers, settlement
cycles, position profits and apportionments (docs/rules.md). Amounts are integers of the margin
asset's smallest unit (see statements.money); prices and quantities are exact decimals of at most
15 significant digits, which SQLite and PostgreSQL both store without loss."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from statements.models import Asset, Statement, TraderAccount
from statements.money import from_units

RATIO_VALIDATORS = [MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))]


class Contract(models.Model):
    """A perpetual contract. All contracts with one margin asset share that asset's fund."""

    class Kind(models.TextChoices):
        LINEAR = "linear", "Linear"
        INVERSE = "inverse", "Inverse"

    symbol = models.CharField(max_length=32, unique=True)
    margin_asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="contracts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    multiplier = models.DecimalField(
        max_digits=15,
        decimal_places=8,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text=(
            "Contract size: base coin per contract (linear) "
            "or quote currency per contract (inverse)."
        ),
    )

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=Q(multiplier__gt=0), name="contract_multiplier_positive"
            ),
        ]

    def __str__(self):
        return self.symbol


class Fund(models.Model):
    """One insurance fund per margin asset, with its settlement schedule.

    `balance_units` always equals the sum of the fund's records; it is kept on the row so that
    posting can lock the fund and read its balance in one step.
    """

    asset = models.OneToOneField(Asset, on_delete=models.PROTECT, related_name="fund")
    balance_units = models.BigIntegerField(default=0)
    head_hash = models.CharField(
        max_length=64, default="", help_text="The hash of the newest record: the chain's head."
    )
    cycle_seconds = models.PositiveIntegerField(
        default=86400, validators=[MinValueValidator(60)], help_text="Length of a settlement cycle."
    )
    anchor = models.DateTimeField(
        help_text="Start of the fund's first cycle; cycles follow without gaps."
    )
    grace_seconds = models.PositiveIntegerField(
        default=300, help_text="Wait after a cycle's end before sharing its losses."
    )
    fund_ratio = models.DecimalField(
        max_digits=5, decimal_places=4, default=Decimal("0.2000"), validators=RATIO_VALIDATORS
    )
    screening_ratio = models.DecimalField(
        max_digits=5, decimal_places=4, default=Decimal("0.9000"), validators=RATIO_VALIDATORS
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset__code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_units__gte=0), name="fund_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(cycle_seconds__gte=60), name="fund_cycle_length_min"
            ),
            models.CheckConstraint(
                condition=Q(
                    fund_ratio__gte=0,
                    fund_ratio__lte=1,
                    screening_ratio__gte=0,
                    screening_ratio__lte=1,
                ),
                name="fund_ratios_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.asset_id and self.asset.code} insurance fund"

    @property
    def balance(self):
        return from_units(self.balance_units, self.asset.precision)


class SettlementCycle(models.Model):
    """A half-open period [starts_at, ends_at) of one fund, and the result of settling it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed, waiting for the grace period"
        SETTLING = "settling", "Settling"
        SETTLED = "settled", "Settled"
        FAILED = "failed", "Failed"

    ACCEPTING = (Status.OPEN, Status.CLOSED)

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="cycles")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # Parameters, copied from the fund when the cycle opens, so history never changes.
    grace_seconds = models.PositiveIntegerField()
    fund_ratio = models.DecimalField(max_digits=5, decimal_places=4, validators=RATIO_VALIDATORS)
    screening_ratio = models.DecimalField(
        max_digits=5, decimal_places=4, validators=RATIO_VALIDATORS
    )
    # The totals of docs/rules.md §2 step 8, written when the cycle settles.
    loss_units = models.BigIntegerField(null=True, blank=True, help_text="L")
    balance_before_units = models.BigIntegerField(null=True, blank=True, help_text="B")
    fund_share_units = models.BigIntegerField(null=True, blank=True, help_text="F")
    users_share_units = models.BigIntegerField(null=True, blank=True, help_text="U")
    total_profit_units = models.BigIntegerField(null=True, blank=True, help_text="P")
    participants_profit_units = models.BigIntegerField(null=True, blank=True, help_text="S")
    threshold_profit_units = models.BigIntegerField(null=True, blank=True)
    apportioned_units = models.BigIntegerField(null=True, blank=True, help_text="Σ a_i")
    backstop_units = models.BigIntegerField(null=True, blank=True)
    uncovered_units = models.BigIntegerField(null=True, blank=True)
    profitable_count = models.PositiveIntegerField(null=True, blank=True)
    participant_count = models.PositiveIntegerField(null=True, blank=True)
    apportionment_root = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text=(
            "Merkle root over the apportionments (fund/merkle.py), "
            "published when the cycle settles."
        ),
    )
    balance_seq = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "The seq of the fund's newest record when the cycle was posted: B is its balance "
            "after (0: the fund had no record); the coverage record, if any, comes right after. "
            "Empty for cycles settled before it was kept."
        ),
    )
    root_format = models.PositiveSmallIntegerField(
        default=2,
        help_text=(
            "1: the root covers the participants' apportionments with their position ids "
            "(cycles settled before the published inputs); 2: every profitable position, each "
            "through its salted commitment (fund/merkle.py)."
        ),
    )
    # Life cycle.
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    settle_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the scheduler last sent this cycle's settlement to a worker.",
    )
    settling_started_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["fund", "-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["fund", "starts_at"], name="cycle_unique_start"),
            models.UniqueConstraint(fields=["fund", "ends_at"], name="cycle_unique_end"),
            # The target of the takeovers' composite foreign key.
            models.UniqueConstraint(fields=["id", "fund"], name="cycle_id_fund"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="cycle_period_positive"
            ),
            models.CheckConstraint(
                condition=Q(status="settled")
                | Q(
                    loss_units__isnull=True, participant_count__isnull=True, settled_at__isnull=True
                ),
                name="cycle_totals_only_when_settled",
            ),
            models.CheckConstraint(
                condition=~Q(status="settled")
                | Q(
                    loss_units=F("fund_share_units")
                    + F("backstop_units")
                    + F("apportioned_units")
                    + F("uncovered_units")
                ),
                name="cycle_loss_fully_accounted",
            ),
        ]
        indexes = [models.Index(fields=["status", "ends_at"], name="cycle_status_end")]
        permissions = [
            (
                "settle_cycles",
                "Can preview and settle cycles, deposit to and withdraw from funds, edit schedules",
            ),
        ]

    def __str__(self):
        return (
            f"{self.fund.asset.code} "
            f"{self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M}"
        )

    @property
    def settle_after(self):
        """When the grace period is over and the cycle's losses can be shared."""
        return self.ends_at + timedelta(seconds=self.grace_seconds)

    @property
    def is_accepting(self):
        return self.status in self.ACCEPTING


class FundRecord(models.Model):
    """One record of a fund's public, append-only ledger.

    Records of one fund are numbered 1, 2, 3 … without gaps; `balance_after_units` is the running
    sum. A correction is a new record that points at the one it corrects.
    """

    class Kind(models.TextChoices):
        LIQUIDATION_PROFIT = "liquidation_profit", "Liquidation profit"
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        SETTLEMENT_COVERAGE = "settlement_coverage", "Settlement: fund's share of losses"
        CORRECTION = "correction", "Correction"

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="records")
    seq = models.PositiveBigIntegerField(help_text="1, 2, 3 … within the fund.")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    amount_units = models.BigIntegerField()
    balance_after_units = models.BigIntegerField()
    created_at = models.DateTimeField(db_index=True)
    takeover = models.OneToOneField(
        "LiquidationTakeover",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="fund_record",
    )
    cycle = models.ForeignKey(
        SettlementCycle,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="fund_records",
    )
    corrects = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="corrections"
    )
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    hash = models.CharField(
        max_length=64, default="", help_text="SHA-256 chained to the previous record (fund.chain)."
    )

    class Meta:
        ordering = ["fund", "-seq"]
        constraints = [
            models.UniqueConstraint(fields=["fund", "seq"], name="fund_record_unique_seq"),
            models.UniqueConstraint(
                fields=["cycle"],
                condition=Q(kind="settlement_coverage"),
                name="fund_record_one_coverage_per_cycle",
            ),
            models.CheckConstraint(condition=~Q(amount_units=0), name="fund_record_amount_nonzero"),
            models.CheckConstraint(
                condition=Q(balance_after_units__gte=0), name="fund_record_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["liquidation_profit", "deposit"], amount_units__gt=0)
                | Q(kind__in=["withdrawal", "settlement_coverage"], amount_units__lt=0)
                | Q(kind="correction", corrects__isnull=False),
                name="fund_record_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=~Q(kind="liquidation_profit") | Q(takeover__isnull=False),
                name="fund_record_profit_has_takeover",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["deposit", "withdrawal", "correction"]) | ~Q(reason=""),
                name="fund_record_manual_has_reason",
            ),
        ]
        indexes = [models.Index(fields=["fund", "created_at"], name="fund_record_fund_time")]

    def __str__(self):
        return f"{self.fund.asset.code} #{self.seq} {self.get_kind_display()}"


class FundBalanceHour(models.Model):
    """One hour of a fund's ledger, aggregated as records are appended (fund.services.ledger):
    balance history charts read these, so they cost the same for a thousand records or a
    billion. Only hours with at least one record have a row; in between, the balance is the
    previous row's close."""

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="balance_hours")
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    open_units = models.BigIntegerField(help_text="Balance before the hour's first record.")
    close_units = models.BigIntegerField(help_text="Balance after the hour's last record.")
    low_units = models.BigIntegerField()
    high_units = models.BigIntegerField()
    inflow_units = models.BigIntegerField(default=0)
    outflow_units = models.BigIntegerField(
        default=0, help_text="Sum of the hour's outflows, as a positive amount."
    )
    records = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["fund", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["fund", "hour"], name="fund_balance_hour_unique"),
            models.CheckConstraint(
                condition=Q(low_units__gte=0), name="fund_balance_hour_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.fund_id} {self.hour:%Y-%m-%d %H}:00"


class FundKindTotal(models.Model):
    """A fund's running totals per kind of record, kept by the ledger as records are appended,
    so that "inflows and outflows by kind" never needs a pass over the whole ledger."""

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="kind_totals")
    kind = models.CharField(max_length=24, choices=FundRecord.Kind.choices)
    total_units = models.BigIntegerField(default=0)
    records = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["fund", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["fund", "kind"], name="fund_kind_total_unique")
        ]

    def __str__(self):
        return f"{self.fund_id} {self.kind}"


class LiquidationTakeover(models.Model):
    """A closed liquidation takeover, as reported by the trading engine.

    `engine_result_units` = remaining margin + PnL from the takeover price to the close price,
    computed here (fund.services.liquidations); > 0 is a profit, < 0 a system loss.
    """

    class Side(models.TextChoices):
        LONG = "long", "Long"
        SHORT = "short", "Short"

    external_id = models.CharField(max_length=64, unique=True)
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="takeovers")
    # On PostgreSQL one composite foreign key, (cycle, fund) → the cycle's (id, fund), checks
    # both columns and that the cycle is this fund's (migration 0006): one check per row, not two.
    fund = models.ForeignKey(
        Fund, on_delete=models.PROTECT, related_name="takeovers", db_constraint=False
    )
    side = models.CharField(max_length=5, choices=Side.choices)
    quantity = models.DecimalField(max_digits=15, decimal_places=6)
    takeover_price = models.DecimalField(max_digits=15, decimal_places=8)
    close_price = models.DecimalField(max_digits=15, decimal_places=8)
    remaining_margin_units = models.BigIntegerField()
    engine_result_units = models.BigIntegerField()
    taken_over_at = models.DateTimeField()
    closed_at = models.DateTimeField()
    cycle = models.ForeignKey(
        SettlementCycle,
        on_delete=models.PROTECT,
        related_name="takeovers",
        db_constraint=False,
        db_index=False,
    )  # the (cycle, result) index serves lookups by cycle
    late = models.BooleanField(
        default=False, help_text="Closed in a cycle that was already settling."
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-closed_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="takeover_quantity_positive"),
            models.CheckConstraint(
                condition=Q(takeover_price__gt=0, close_price__gt=0),
                name="takeover_prices_positive",
            ),
            models.CheckConstraint(
                condition=Q(remaining_margin_units__gte=0), name="takeover_margin_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(closed_at__gte=F("taken_over_at")),
                name="takeover_closed_after_taken_over",
            ),
        ]
        indexes = [
            models.Index(fields=["cycle", "engine_result_units"], name="takeover_cycle_result"),
        ]

    def __str__(self):
        return f"{self.contract.symbol} takeover {self.external_id}"


class PositionProfit(models.Model):
    """A position's profit for one settlement cycle, as reported by the trading engine."""

    cycle = models.ForeignKey(
        SettlementCycle, on_delete=models.PROTECT, related_name="position_profits"
    )
    position_id = models.PositiveBigIntegerField(
        help_text="The engine's position id; ties rank lower ids first."
    )
    account = models.ForeignKey(
        TraderAccount, on_delete=models.PROTECT, related_name="position_profits"
    )
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="+")
    profit_units = models.BigIntegerField()
    salt = models.BinaryField(
        max_length=16,
        null=True,
        blank=True,
        help_text=(
            "16 random bytes, given to the position's trader only: the cycle's published data "
            "commits to the position through SHA-256(salt ‖ its id) (fund/merkle.py, form 2)."
        ),
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cycle", "-profit_units", "position_id"]
        constraints = [
            models.UniqueConstraint(fields=["cycle", "position_id"], name="position_profit_unique"),
            # The target of the apportionments' composite foreign key.
            models.UniqueConstraint(fields=["id", "cycle"], name="position_profit_id_cycle"),
        ]
        indexes = [
            models.Index(
                F("cycle"),
                F("profit_units").desc(),
                F("position_id"),
                name="position_profit_ranking",
            ),
        ]

    def __str__(self):
        return f"position {self.position_id} in cycle {self.cycle_id}"


class Apportionment(models.Model):
    """The part of a cycle's system loss that one participating position bears."""

    # On PostgreSQL one composite foreign key, (position, cycle) → the position profit's (id,
    # cycle), checks both columns at once and that the position belongs to this very cycle
    # (migration 0003); it replaces the two single-column keys, one check per row instead of two.
    # The unique (cycle, rank) index serves every lookup by cycle.
    cycle = models.ForeignKey(
        SettlementCycle,
        on_delete=models.PROTECT,
        related_name="apportionments",
        db_index=False,
        db_constraint=False,
    )
    position = models.OneToOneField(
        PositionProfit, on_delete=models.PROTECT, related_name="apportionment", db_constraint=False
    )
    statement = models.OneToOneField(
        Statement, on_delete=models.PROTECT, related_name="apportionment"
    )
    rank = models.PositiveIntegerField(help_text="1 = the largest profit of the cycle.")
    amount_units = models.BigIntegerField()
    rounding_unit = models.BooleanField(
        default=False,
        help_text="Received one leftover smallest unit in the largest-remainder step.",
    )

    class Meta:
        ordering = ["cycle", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["cycle", "rank"], name="apportionment_unique_rank"),
            models.CheckConstraint(
                condition=Q(amount_units__gte=0), name="apportionment_not_negative"
            ),
        ]

    def __str__(self):
        return f"apportionment of position {self.position_id} in cycle {self.cycle_id}"


class AdminAction(models.Model):
    """The audit trail: every admin action, who did it, when and from where. Append-only."""

    class Action(models.TextChoices):
        PREVIEW = "preview", "Previewed a settlement"
        SETTLE = "settle", "Settled a cycle"
        DEPOSIT = "deposit", "Deposited to a fund"
        WITHDRAW = "withdraw", "Withdrew from a fund"
        SCHEDULE = "schedule", "Changed a fund's schedule"
        CORRECT = "correct", "Corrected a record"
        WEBHOOK_CREATE = "webhook_create", "Added a webhook endpoint"
        WEBHOOK_UPDATE = "webhook_update", "Changed a webhook endpoint"
        WEBHOOK_SECRET = "webhook_secret", "Replaced a webhook endpoint's secret"
        WEBHOOK_RESEND = "webhook_resend", "Sent a webhook delivery again"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    fund = models.ForeignKey(
        Fund, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cycle = models.ForeignKey(
        SettlementCycle, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    record = models.ForeignKey(
        FundRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return (
            f"{self.actor} {self.get_action_display().lower()} "
            f"at {self.created_at:%Y-%m-%d %H:%M:%S}"
        )


class IdempotentRequest(models.Model):
    """A money-moving API request made with an Idempotency-Key, and the answer it got: the same
    key with the same body is answered again from here; with another body it is refused. Kept
    for IDEMPOTENCY_KEY_HOURS (fund/services/idempotency.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotent_request_unique_key")
        ]

    def __str__(self):
        return f"{self.user} {self.key}"


class LogTile(models.Model):
    """One tile of a fund's transparency log (fund/tlog.py, C2SP tlog-tiles): up to 256
    consecutive hashes of the tree's level 8·`level`, concatenated (32 bytes each), kept by the
    ledger as records are appended. A tile only grows (a trigger keeps it so on PostgreSQL)."""

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="log_tiles")
    level = models.PositiveSmallIntegerField()
    index = models.PositiveBigIntegerField()
    width = models.PositiveSmallIntegerField(help_text="Hashes held, 1 to 256.")
    hashes = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fund", "level", "index"], name="log_tile_unique"),
            models.CheckConstraint(
                condition=Q(width__gte=1, width__lte=256), name="log_tile_width_range"
            ),
        ]

    def __str__(self):
        return f"{self.fund_id} tile {self.level}/{self.index}.p/{self.width}"


class LogCheckpoint(models.Model):
    """A signed checkpoint of a fund's log (C2SP tlog-checkpoint in a C2SP signed note).
    Append-only; each extends the one before it (fund/services/transparency.py)."""

    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="log_checkpoints")
    size = models.PositiveBigIntegerField(help_text="The tree's size: records 1 to size.")
    root_hash = models.CharField(max_length=64, help_text="The tree's root, hex.")
    note = models.TextField(help_text="The signed note, as served.")
    key_id = models.CharField(max_length=8, help_text="The signing key's id, hex.")
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["fund", "-size"]
        get_latest_by = "size"
        constraints = [
            models.UniqueConstraint(fields=["fund", "size"], name="log_checkpoint_unique_size"),
        ]

    def __str__(self):
        return f"{self.fund_id} checkpoint {self.size}"


class EventCounter(models.Model):
    """The outbox's one counter row: the last event number given (fund/services/outbox.py)."""

    last = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"events up to {self.last}"


class Event(models.Model):
    """One entry of the outbox: a change others must hear of, written in the change's own
    transaction, numbered 1, 2, 3 … without gaps. Append-only. `public` events carry no trader
    identity."""

    class Kind(models.TextChoices):
        RECORDS_APPENDED = "fund.records_appended", "Records appended to a fund's ledger"
        RECORD_CORRECTED = "fund.record_corrected", "A record corrected"
        CYCLE_CLOSED = "cycle.closed", "A cycle closed"
        CYCLE_SETTLED = "cycle.settled", "A cycle settled"
        CYCLE_FAILED = "cycle.failed", "A cycle's settlement failed"
        CYCLE_APPLIED = "cycle.applied", "A cycle's apportionments applied by the exchange"

    seq = models.PositiveBigIntegerField(unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    fund = models.ForeignKey(Fund, on_delete=models.PROTECT, related_name="+")
    cycle = models.ForeignKey(
        SettlementCycle, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    data = models.JSONField(default=dict)
    public = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.CheckConstraint(condition=Q(seq__gte=1), name="event_seq_positive"),
        ]

    def __str__(self):
        return f"event {self.seq} {self.kind}"


class CycleApplication(models.Model):
    """The exchange's acknowledgement that it applied a settled cycle's apportionments to the
    traders' balances: the count, total and root it applied, who said so and when."""

    cycle = models.OneToOneField(
        SettlementCycle, on_delete=models.PROTECT, related_name="application"
    )
    count = models.PositiveBigIntegerField()
    total_units = models.BigIntegerField()
    root = models.CharField(max_length=64, blank=True)
    token = models.ForeignKey(
        "statements.ApiToken", on_delete=models.PROTECT, null=True, related_name="+"
    )
    applied_at = models.DateTimeField()

    def __str__(self):
        return f"cycle {self.cycle_id} applied at {self.applied_at:%Y-%m-%d %H:%M:%S}"


class WebhookEndpoint(models.Model):
    """Where the exchange's systems hear of events: a URL Celery posts each matching event to,
    signed per Standard Webhooks with the endpoint's secret (fund/services/webhooks.py).

    `cursor` is the last event seq the fan-out has looked at for this endpoint: a new endpoint
    starts at the newest event, and hears of every later one. Endpoints are never deleted (their
    delivery log stays); they are switched off."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text="Event kinds sent; at least one.")
    secret = models.CharField(max_length=64, help_text="whsec_ and 32 random bytes, base64.")
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    cursor = models.PositiveBigIntegerField(default=0)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="The first failed attempt since the last success."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One event to one endpoint: pending until a 2xx answer, retried on a schedule
    (fund/services/webhooks.py), failed when the schedule ends or the endpoint answers 410."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it until then."
    )
    lease = models.CharField(max_length=16, blank=True, help_text="The attempt under way.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    retry_from = models.DateTimeField(
        help_text="Its retries end WEBHOOK_RETRY_FOR_SECONDS after this (made, or sent again)."
    )

    class Meta:
        ordering = ["-event"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self):
        return f"event {self.event_id} to endpoint {self.endpoint_id}: {self.status}"


class CycleEmail(models.Model):
    """The one email a trader gets for a settled cycle they were apportioned in: written after
    the cycle's commit by the fan-out, then sent by Celery (fund/services/notices.py)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Not sent (opted out or no address)"
        FAILED = "failed", "Given up (refused by the mail server, or too many attempts)"

    cycle = models.ForeignKey(SettlementCycle, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(TraderAccount, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    leased_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cycle", "account"], name="cycle_email_once"),
        ]
        indexes = [
            models.Index(
                fields=["cycle", "id"], name="cycle_email_pending", condition=Q(status="pending")
            ),
        ]

    def __str__(self):
        return f"cycle {self.cycle_id} email to {self.account_id}: {self.status}"


class FanOutCursor(models.Model):
    """How far an internal consumer of the outbox (the traders' emails) has read the events."""

    name = models.CharField(max_length=32, unique=True)
    last = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} up to {self.last}"


class IndexPrice(models.Model):
    """An asset's index price in US dollars at a moment, as the trading engine reports it
    (/api/v1/ingest/index-prices): exactly once per (asset, moment). The portal shows each fund's
    value in USD with the latest one; the ledger never uses it."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="index_prices")
    at = models.DateTimeField(help_text="The moment the price is for (UTC).")
    price = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="US dollars for one unit of the asset."
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset", "at"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "at"], name="index_price_unique_moment"),
            models.CheckConstraint(condition=Q(price__gt=0), name="index_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.asset.code} {self.price} USD at {self.at:%Y-%m-%d %H:%M}"
