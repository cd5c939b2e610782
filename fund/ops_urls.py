from django.urls import path

from fund import views_ops, views_ops_webhooks

app_name = "ops"

urlpatterns = [
    path("", views_ops.index, name="index"),
    path("cycles/<int:pk>/", views_ops.cycle, name="cycle"),
    path("cycles/<int:pk>/preview/", views_ops.preview, name="preview"),
    path("cycles/<int:pk>/settle/", views_ops.settle, name="settle"),
    path("cycles/<int:pk>/resend/", views_ops.resend, name="resend"),
    path("funds/<str:asset>/move/", views_ops.fund_move, name="fund-move"),
    path("funds/<str:asset>/correct/", views_ops.fund_correct, name="fund-correct"),
    path("funds/<str:asset>/schedule/", views_ops.fund_schedule, name="fund-schedule"),
    path("audit/", views_ops.audit, name="audit"),
    path("webhooks/", views_ops_webhooks.webhooks_index, name="webhooks"),
    path("webhooks/<int:pk>/", views_ops_webhooks.webhook, name="webhook"),
    path("webhooks/<int:pk>/secret/", views_ops_webhooks.webhook_secret, name="webhook-secret"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery>/resend/",
        views_ops_webhooks.webhook_resend,
        name="webhook-resend",
    ),
]
