"""System checks (`manage.py check`, and every start-up): a log signing key that is configured
must be readable and valid, the verifier key published must be the signing key's, and the logs'
origin host a plain host name, so that a misconfiguration stops the deploy rather than the beat."""

import re

from django.conf import settings
from django.core.checks import Error, register

from fund.signednote import NoteError, Verifier

HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?")


@register()
def log_keys(app_configs, **kwargs):
    from fund.services.transparency import LogKeyError, log_signer

    errors = []
    try:
        signer = log_signer()
    except LogKeyError as exc:
        return [Error(str(exc), hint="README, Production: the log's signing key", id="fund.E001")]
    if settings.LOG_VERIFIER_KEY:
        try:
            published = Verifier.from_vkey(settings.LOG_VERIFIER_KEY)
        except NoteError as exc:
            errors.append(Error(f"LOG_VERIFIER_KEY is not a verifier key: {exc}", id="fund.E002"))
        else:
            if signer is not None and published.vkey != signer.verifier.vkey:
                errors.append(
                    Error("LOG_VERIFIER_KEY is not the signing key's verifier key", id="fund.E003")
                )
    if (signer or settings.LOG_VERIFIER_KEY) and not HOST.fullmatch(settings.LOG_ORIGIN_HOST):
        errors.append(
            Error(
                f"LOG_ORIGIN_HOST {settings.LOG_ORIGIN_HOST!r} is not a host name: the logs are "
                "named <host>/log/<ASSET> (lower case, no wildcard, an optional :port)",
                id="fund.E004",
            )
        )
    return errors
