from django.apps import AppConfig


class FundConfig(AppConfig):
    name = "fund"
    verbose_name = "Insurance fund"

    def ready(self):
        from fund.services import bulk  # noqa: F401  (registers the `__any` lookup)
