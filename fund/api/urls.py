from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from fund.api import views

v1 = [
    path("ingest/liquidations", views.LiquidationIntakeView.as_view(), name="ingest-liquidations"),
    path(
        "ingest/position-profits",
        views.PositionProfitIntakeView.as_view(),
        name="ingest-position-profits",
    ),
    path("funds", views.FundListView.as_view(), name="funds"),
    path("funds/<str:asset>", views.FundDetailView.as_view(), name="fund"),
    path("funds/<str:asset>/history", views.FundHistoryView.as_view(), name="fund-history"),
    path("funds/<str:asset>/records", views.FundRecordsView.as_view(), name="fund-records"),
    path("cycles", views.CycleListView.as_view(), name="cycles"),
    path("cycles/<int:pk>", views.CycleDetailView.as_view(), name="cycle"),
    path("me/statements", views.MyStatementsView.as_view(), name="my-statements"),
    path("me/statements/<int:pk>", views.MyStatementView.as_view(), name="my-statement"),
    path(
        "me/statements/<int:pk>/proof",
        views.MyStatementProofView.as_view(),
        name="my-statement-proof",
    ),
    path("me/tokens", views.MyTokensView.as_view(), name="my-tokens"),
    path("me/tokens/<str:prefix>", views.MyTokenView.as_view(), name="my-token"),
    path(
        "admin/cycles/<int:pk>/preview",
        views.CyclePreviewView.as_view(),
        name="admin-cycle-preview",
    ),
    path(
        "admin/cycles/<int:pk>/settle", views.CycleSettleView.as_view(), name="admin-cycle-settle"
    ),
    path(
        "admin/funds/<str:asset>/deposits",
        views.FundDepositView.as_view(),
        name="admin-fund-deposit",
    ),
    path(
        "admin/funds/<str:asset>/withdrawals",
        views.FundWithdrawView.as_view(),
        name="admin-fund-withdraw",
    ),
    path("admin/actions", views.AdminActionsView.as_view(), name="admin-actions"),
]

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script from a URL: no inline script, so the CSP holds here too.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in v1],
]
