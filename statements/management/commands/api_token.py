from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from statements.models import ApiToken
from statements.services import api_token_create, api_token_revoke

ENGINE_USERNAME = "trading-engine"


class Command(BaseCommand):
    help = (
        "Make, list or revoke API tokens. "
        "The trading engine's credential: `api_token create --engine NAME`."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser(
            "create", help="make a token; it is printed once and stored only as a hash"
        )
        create.add_argument("name")
        who = create.add_mutually_exclusive_group(required=True)
        who.add_argument(
            "--engine",
            action="store_true",
            help=f"for the trading engine (service user {ENGINE_USERNAME!r})",
        )
        who.add_argument("--user", help="a personal token for this username")
        sub.add_parser("list", help="list tokens (prefixes only)")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")

    def handle(self, *args, action, **options):
        if action == "list":
            for row in ApiToken.objects.select_related("user"):
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                self.stdout.write(
                    f"{row.prefix}  {row.kind:<8}  {row.user.username:<20}  {row.name}  ({state})"
                )
            return
        try:
            if action == "revoke":
                row = api_token_revoke(prefix=options["prefix"])
                self.stdout.write(f"Revoked {row.prefix} ({row.name}).")
                return
            User = get_user_model()
            if options["engine"]:
                with transaction.atomic():
                    user, created = User.objects.get_or_create(username=ENGINE_USERNAME)
                    if created:
                        user.set_unusable_password()
                        user.save()
                kind = ApiToken.Kind.ENGINE
            else:
                try:
                    user = User.objects.get(username=options["user"])
                except User.DoesNotExist:
                    raise CommandError(
                        f"There is no user {options['user']!r}.", returncode=2
                    ) from None
                kind = ApiToken.Kind.PERSONAL
            row, token = api_token_create(user=user, kind=kind, name=options["name"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages), returncode=2) from None
        self.stdout.write(
            f"Token for {user.username} ({row.get_kind_display()}), shown this once:\n{token}"
        )
