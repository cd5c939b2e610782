from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from fund.api import (
    admin,
    cycle_inputs,
    docs,
    engine,
    ingestion,
    log,
    public,
    traders,
    webhooks,
)

v1 = [
    path(
        "ingest/liquidations", ingestion.LiquidationIntakeView.as_view(), name="ingest-liquidations"
    ),
    path(
        "ingest/position-profits",
        ingestion.PositionProfitIntakeView.as_view(),
        name="ingest-position-profits",
    ),
    path(
        "ingest/index-prices", ingestion.IndexPriceIntakeView.as_view(), name="ingest-index-prices"
    ),
    path("engine/events", engine.EngineEventsView.as_view(), name="engine-events"),
    path(
        "engine/cycles/<int:pk>/apportionments",
        engine.EngineApportionmentsView.as_view(),
        name="engine-apportionments",
    ),
    path(
        "engine/cycles/<int:pk>/applied",
        engine.EngineAppliedView.as_view(),
        name="engine-applied",
    ),
    path("funds", public.FundListView.as_view(), name="funds"),
    path("funds/<str:asset>", public.FundDetailView.as_view(), name="fund"),
    path("funds/<str:asset>/history", public.FundHistoryView.as_view(), name="fund-history"),
    path("funds/<str:asset>/records", public.FundRecordsView.as_view(), name="fund-records"),
    path(
        "funds/<str:asset>/records/<int:seq>", public.FundRecordView.as_view(), name="fund-record"
    ),
    path("funds/<str:asset>/log/inclusion", log.LogInclusionView.as_view(), name="log-inclusion"),
    path(
        "funds/<str:asset>/log/consistency",
        log.LogConsistencyView.as_view(),
        name="log-consistency",
    ),
    path("cycles", public.CycleListView.as_view(), name="cycles"),
    path("cycles/<int:pk>", public.CycleDetailView.as_view(), name="cycle"),
    path("cycles/<int:pk>/losses", cycle_inputs.CycleLossesView.as_view(), name="cycle-losses"),
    path(
        "cycles/<int:pk>/positions",
        cycle_inputs.CyclePositionsView.as_view(),
        name="cycle-positions",
    ),
    path("me/statements", traders.MyStatementsView.as_view(), name="my-statements"),
    path("me/statements/<int:pk>", traders.MyStatementView.as_view(), name="my-statement"),
    path(
        "me/statements/<int:pk>/proof",
        traders.MyStatementProofView.as_view(),
        name="my-statement-proof",
    ),
    path("me/positions", traders.MyPositionsView.as_view(), name="my-positions"),
    path(
        "me/positions/<int:pk>/proof",
        traders.MyPositionProofView.as_view(),
        name="my-position-proof",
    ),
    path("me/tokens", traders.MyTokensView.as_view(), name="my-tokens"),
    path("me/tokens/<str:prefix>", traders.MyTokenView.as_view(), name="my-token"),
    path(
        "admin/cycles/<int:pk>/preview",
        admin.CyclePreviewView.as_view(),
        name="admin-cycle-preview",
    ),
    path(
        "admin/cycles/<int:pk>/settle", admin.CycleSettleView.as_view(), name="admin-cycle-settle"
    ),
    path(
        "admin/funds/<str:asset>/deposits",
        admin.FundDepositView.as_view(),
        name="admin-fund-deposit",
    ),
    path(
        "admin/funds/<str:asset>/withdrawals",
        admin.FundWithdrawView.as_view(),
        name="admin-fund-withdraw",
    ),
    path(
        "admin/funds/<str:asset>/records/<int:seq>/corrections",
        admin.RecordCorrectionView.as_view(),
        name="admin-record-correct",
    ),
    path("admin/actions", admin.AdminActionsView.as_view(), name="admin-actions"),
    path("admin/webhooks", webhooks.WebhookEndpointsView.as_view(), name="admin-webhooks"),
    path("admin/webhooks/<int:pk>", webhooks.WebhookEndpointView.as_view(), name="admin-webhook"),
    path(
        "admin/webhooks/<int:pk>/secret",
        webhooks.WebhookSecretView.as_view(),
        name="admin-webhook-secret",
    ),
    path(
        "admin/webhooks/<int:pk>/deliveries",
        webhooks.WebhookDeliveriesView.as_view(),
        name="admin-webhook-deliveries",
    ),
    path(
        "admin/webhooks/<int:pk>/deliveries/<int:delivery>/resend",
        webhooks.WebhookResendView.as_view(),
        name="admin-webhook-resend",
    ),
]

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The reference inside the site, from the same schema (fund/api/docs.py).
    path("docs/", docs.api_docs, name="docs"),
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in v1],
]
