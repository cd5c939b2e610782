from django.contrib import admin

from fund.models import (
    AdminAction,
    Apportionment,
    Contract,
    Fund,
    FundRecord,
    LiquidationTakeover,
    SettlementCycle,
)
from statements.admin import ReadOnlyAdmin


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ["symbol", "margin_asset", "kind", "multiplier"]
    list_filter = ["kind", "margin_asset"]
    search_fields = ["symbol"]

    def get_readonly_fields(self, request, obj=None):
        return (
            ["symbol", "margin_asset", "kind", "multiplier"]
            if obj and obj.takeovers.exists()
            else []
        )


@admin.register(Fund)
class FundAdmin(ReadOnlyAdmin):
    """A fund is set up here, for a margin asset without one: its first cycle's start and its
    schedule. From then on its schedule is edited in the settlement console (/ops/), which
    records the change, and its balance moves only through its ledger."""

    fields = ["asset", "anchor", "cycle_seconds", "grace_seconds", "fund_ratio", "screening_ratio"]

    def has_add_permission(self, request):
        return request.user.has_perm("fund.add_fund")

    list_display = [
        "asset",
        "balance_units",
        "cycle_seconds",
        "grace_seconds",
        "fund_ratio",
        "screening_ratio",
    ]


@admin.register(FundRecord)
class FundRecordAdmin(ReadOnlyAdmin):
    list_display = ["fund", "seq", "kind", "amount_units", "balance_after_units", "created_at"]
    list_filter = ["kind", "fund"]
    list_select_related = ["fund__asset"]


@admin.register(SettlementCycle)
class SettlementCycleAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "fund",
        "starts_at",
        "ends_at",
        "status",
        "loss_units",
        "participant_count",
    ]
    list_filter = ["status", "fund"]
    list_select_related = ["fund__asset"]


@admin.register(LiquidationTakeover)
class LiquidationTakeoverAdmin(ReadOnlyAdmin):
    list_display = [
        "external_id",
        "contract",
        "side",
        "engine_result_units",
        "closed_at",
        "cycle",
        "late",
    ]
    list_filter = ["late", "contract"]
    search_fields = ["external_id"]


@admin.register(Apportionment)
class ApportionmentAdmin(ReadOnlyAdmin):
    list_display = ["cycle", "rank", "amount_units", "rounding_unit"]
    raw_id_fields = ["position", "statement"]


@admin.register(AdminAction)
class AdminActionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "fund", "cycle", "ip_address"]
    list_filter = ["action"]


admin.site.site_header = "Insurance Fund administration"
admin.site.site_title = "Insurance Fund admin"
admin.site.index_title = "Reference data and the (read-only) books"
