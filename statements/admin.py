from django.contrib import admin

from statements.models import ApiToken, Asset, Statement, TraderAccount


class ReadOnlyAdmin(admin.ModelAdmin):
    """Books are append-only: visible here, changed only by the services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "precision"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["code", "precision"] if obj else []  # amounts are stored in units of this precision


@admin.register(TraderAccount)
class TraderAccountAdmin(admin.ModelAdmin):
    list_display = ["external_id", "user", "created_at"]
    search_fields = ["external_id", "user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["external_id", "created_at"]


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "asset", "type", "amount_units", "created_at"]
    list_filter = ["type", "asset"]
    search_fields = ["account__external_id"]
    list_select_related = ["account", "asset"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "name", "kind", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind"]
    exclude = ["digest"]
