"""Fields the API's serializers share: amounts as decimal text in their asset's places."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from statements import money
from statements.money import format_units


@extend_schema_field(OpenApiTypes.STR)
class Amount(serializers.Field):
    """Integer units (the attribute `units`) shown as decimal text in the precision of the asset
    at `asset` (a dotted path from the object); None stays None."""

    def __init__(self, units: str, asset: str = "fund.asset", **kwargs):
        self.units, self.asset = units, asset
        kwargs.setdefault("read_only", True)
        super().__init__(source="*", **kwargs)

    def to_representation(self, obj):
        value = obj[self.units] if isinstance(obj, dict) else getattr(obj, self.units)
        if value is None:
            return None
        asset = obj
        for part in self.asset.split("."):
            asset = asset[part] if isinstance(asset, dict) else getattr(asset, part)
        return format_units(value, asset.precision)


DECIMAL_TEXT = f"^{money.DECIMAL_TEXT}$"  # the one form money is written in (statements.money)


def decimal_text(help_text: str, *, signed: bool = False) -> serializers.RegexField:
    """A decimal amount as text (JSON numbers are read exactly too)."""
    return serializers.RegexField(
        DECIMAL_TEXT if signed else DECIMAL_TEXT.replace("-?", ""), help_text=help_text
    )
