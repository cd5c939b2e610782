import os

from django.core.management.base import BaseCommand, CommandError

from fund.signednote import NoteError, Signer


class Command(BaseCommand):
    # It makes the key the checks look for: LOG_SIGNING_KEY_FILE may well name it already.
    requires_system_checks = []
    help = (
        "Make the Ed25519 key that signs the funds' log checkpoints: writes the private key "
        "(C2SP/Go note form, PRIVATE+KEY+…) to a new file readable by its owner only, and prints "
        "the verifier key (name+keyid+key) to publish."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "name", help="the key's name, a schema-less URL such as fund.example.com/log"
        )
        parser.add_argument("--out", required=True, help="the private key's file (must not exist)")

    def handle(self, *args, name, out, **options):
        try:
            signer = Signer.generate(name)
        except NoteError as exc:
            raise CommandError(str(exc)) from None
        try:
            descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(
                f"{out} exists already: a signing key is never overwritten"
            ) from None
        except OSError as exc:
            raise CommandError(f"cannot create {out}: {exc.strerror}") from None
        with os.fdopen(descriptor, "w") as file:
            file.write(signer.skey + "\n")
        self.stdout.write(signer.verifier.vkey)
