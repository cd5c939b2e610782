"""What settlement staff send and get (fund/api/admin.py)."""

from rest_framework import serializers

from fund.api.serializers.fields import decimal_text
from fund.models import AdminAction


class PreviewOut(serializers.Serializer):
    cycle = serializers.IntegerField()
    asset = serializers.CharField()
    loss = serializers.CharField()
    balance = serializers.CharField()
    fund_share = serializers.CharField()
    users_share = serializers.CharField()
    total_profit = serializers.CharField()
    participants_profit = serializers.CharField()
    threshold_profit = serializers.CharField()
    profitable_count = serializers.IntegerField()
    participant_count = serializers.IntegerField()
    backstop = serializers.CharField()
    uncovered = serializers.CharField()
    largest = serializers.ListField(
        child=serializers.DictField(), help_text="The largest apportionments, by rank."
    )


class MoneyMoveIn(serializers.Serializer):
    amount = decimal_text("A positive decimal string, at most the asset's decimals.")
    reason = serializers.CharField(max_length=2000, help_text="Published with the record.")


class CorrectionIn(serializers.Serializer):
    amount = decimal_text(
        "A signed decimal string, not zero, at most the asset's decimals: what the "
        "correction adds to the fund (negative: takes out).",
        signed=True,
    )
    reason = serializers.CharField(
        max_length=2000, help_text="Published with the correction, beside the corrected record."
    )


class SettleOut(serializers.Serializer):
    cycle = serializers.IntegerField()
    status = serializers.CharField()
    task_id = serializers.CharField(allow_null=True)


class AdminActionOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")
    asset = serializers.CharField(source="fund.asset.code", default=None, allow_null=True)

    class Meta:
        model = AdminAction
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "asset",
            "cycle",
            "record",
            "details",
            "ip_address",
            "user_agent",
        ]
