from django.urls import path

from fund import views, views_log, views_me

app_name = "fund"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("funds/<str:asset>/", views.fund_detail, name="fund"),
    path("funds/<str:asset>/daily/", views.fund_daily, name="fund-daily"),
    path("cycles/", views.cycle_list, name="cycles"),
    path("cycles/<int:pk>/", views.cycle_detail, name="cycle"),
    path("rules/", views.rules, name="rules"),
    path("faq/", views.faq, name="faq"),
    path("me/statements/", views_me.my_statements, name="my-statements"),
    path("me/statements/<int:pk>/", views_me.my_statement, name="my-statement"),
    path("me/positions/", views_me.my_positions, name="my-positions"),
    path("me/notifications/", views_me.my_notifications, name="my-notifications"),
    path("me/settings/", views_me.my_settings, name="my-settings"),
    path("me/tokens/", views_me.my_tokens, name="my-tokens"),
    path("me/tokens/<str:prefix>/revoke/", views_me.my_token_revoke, name="my-token-revoke"),
    path("check_ledger.py", views.check_ledger_script, name="check-ledger"),
    path("log/vkey", views_log.vkey, name="log-vkey"),
    path("log/<str:asset>/checkpoint", views_log.checkpoint, name="log-checkpoint"),
    path("log/<str:asset>/tile/<path:path>", views_log.tile, name="log-tile"),
]
