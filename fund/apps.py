from django.apps import AppConfig


class FundConfig(AppConfig):
    name = "fund"
    verbose_name = "Insurance fund"

    def ready(self):
        from fund import checks  # noqa: F401  (registers the log keys' system check)
        from fund.services import bulk  # noqa: F401  (registers the `__any` lookup)
