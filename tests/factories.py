from datetime import UTC, datetime
from decimal import Decimal

import factory

from fund.models import Contract, Fund
from statements.models import Asset

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset
        django_get_or_create = ("code",)

    code = "USDT"
    name = "Tether USD"
    precision = 8


class FundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Fund

    asset = factory.SubFactory(AssetFactory)
    anchor = ANCHOR
    cycle_seconds = 86400
    grace_seconds = 300
    fund_ratio = Decimal("0.2")
    screening_ratio = Decimal("0.9")


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contract
        django_get_or_create = ("symbol",)

    symbol = "BTCUSDT"
    margin_asset = factory.SubFactory(AssetFactory)
    kind = Contract.Kind.LINEAR
    multiplier = Decimal(1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "auth.User"

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-for-tests")
