"""The traders' side of the books: margin assets, trader accounts and their asset statements.

This app knows nothing of insurance funds. The `fund` app builds on it and posts statements
into it (for example one `apportionment` statement per settlement participant).
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models

from statements.money import MAX_PRECISION, format_units, from_units


class Asset(models.Model):
    """A margin asset (USDT, BTC …). Amounts in it are integers of 10^-precision."""

    code = models.CharField(
        max_length=16,
        unique=True,
        validators=[RegexValidator(r"^[A-Z0-9]{2,16}$", "Use 2 to 16 capital letters or digits.")],
    )
    name = models.CharField(max_length=64, blank=True)
    precision = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(MAX_PRECISION)],
        help_text=f"Decimal places the exchange books this asset in (0 to {MAX_PRECISION}).",
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(precision__lte=MAX_PRECISION), name="asset_precision_range"
            ),
        ]

    def __str__(self):
        return self.code

    def format(self, units: int) -> str:
        return format_units(units, self.precision)


class TraderAccount(models.Model):
    """A trading account as the exchange's engine knows it, linked to a portal login."""

    external_id = models.CharField(max_length=64, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="trader_account",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self):
        return self.external_id


class Statement(models.Model):
    """One line of a trader's asset statement. Append-only: never edited or deleted."""

    class Type(models.TextChoices):
        APPORTIONMENT = "apportionment", "Apportionment"

    # No index of its own: the (account, time) index below serves every lookup by account.
    account = models.ForeignKey(
        TraderAccount, on_delete=models.PROTECT, related_name="statements", db_index=False
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="statements")
    type = models.CharField(max_length=32, choices=Type.choices)
    amount_units = models.BigIntegerField(help_text="Signed, in the asset's smallest units.")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="statement_account_time")
        ]
        constraints = [
            # An apportionment takes from a profit: never a credit (it may be zero after rounding).
            models.CheckConstraint(
                condition=~models.Q(type="apportionment") | models.Q(amount_units__lte=0),
                name="statement_apportionment_not_credit",
            ),
        ]

    def __str__(self):
        return f"{self.get_type_display()} {self.amount} {self.asset_id}"

    @property
    def amount(self):
        return from_units(self.amount_units, self.asset.precision)


class ApiToken(models.Model):
    """A credential for the REST API: the trading engine's service account or a trader's own.

    Only a SHA-256 digest is stored; the token is shown once, when it is made, and can be
    revoked. The prefix finds the row without revealing the secret.
    """

    class Kind(models.TextChoices):
        ENGINE = "engine", "Trading engine (ingestion)"
        PERSONAL = "personal", "Personal"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class LoginBudget(models.Model):
    """How many password checks one account, or one client address, has used in its current
    window (statements/lockout.py). A slot is taken, in one atomic statement, before a password
    is checked, and given back when the password was right or the attempt refused; so `used` is
    the window's failures plus the checks under way."""

    key = models.CharField(
        max_length=80, primary_key=True, help_text="account:<sha256 of the username> or address:…"
    )
    used = models.IntegerField()
    window_ends = models.BigIntegerField(help_text="Unix time, in seconds.")

    class Meta:
        indexes = [models.Index(fields=["window_ends"], name="login_budget_window_ends")]

    def __str__(self):
        return f"{self.key}: {self.used}"


class Profile(models.Model):
    """A person's own choices on the portal: the apportionment emails, and how far they have
    read their notifications (every apportionment statement after `notices_read_at` is unread)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    email_apportionments = models.BooleanField(
        default=True,
        verbose_name="Email me when a settlement apportions one of my positions",
    )
    notices_read_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"profile of {self.user}"
