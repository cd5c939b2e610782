"""The demo's simulated exchange wallet (`make demo` only): what the exchange's real wallet does,
in a few lines, inside the demo's own process.

It has an engine token and a webhook endpoint for `cycle.settled`, both made when the demo
starts (`wallet_setup`). Each webhook arrives at /demo/wallet/webhook, is checked with the
endpoint's secret as the Standard Webhooks libraries check it, and answered 204 at once; a
thread then pulls the cycle's apportionments from the engine feed (over HTTP, as the exchange
would), checks that it has them all (their count and total against the feed's headers), and
acknowledges them (`POST …/applied`), so that the console and the cycle's report show the cycle
applied. Without `wallet_setup` (anywhere but the demo) the URL answers 404.
"""

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.http import HttpResponse, HttpResponseNotFound
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from standardwebhooks import Webhook

from fund.models import Event, SettlementCycle, WebhookEndpoint
from fund.services.applications import cycle_apply
from fund.services.audit import Audit
from fund.services.webhooks import webhook_endpoint_create, webhook_endpoint_new_secret
from statements.models import ApiToken
from statements.services import api_token_create

logger = logging.getLogger(__name__)
WALLET_USERNAME = "demo-exchange-wallet"
DESCRIPTION = "The demo's simulated exchange wallet"


@dataclass
class Wallet:
    base_url: str
    token: str
    secret: str
    applied: list[int] = field(default_factory=list)


WALLET: Wallet | None = None


def wallet_user():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=WALLET_USERNAME, defaults={"first_name": "Demo wallet"}
    )
    return user


def wallet_setup(*, base_url: str, admin) -> Wallet:
    """A fresh engine token (the last start's revoked) and the wallet's endpoint (made once,
    with a new secret on each start), both kept in memory only."""
    global WALLET
    user = wallet_user()
    audit = Audit(actor=admin, user_agent="make demo")
    url = base_url.rstrip("/") + reverse("demo-wallet-webhook")
    ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    _, token = api_token_create(user=user, kind=ApiToken.Kind.ENGINE, name="demo wallet")
    endpoint = WebhookEndpoint.objects.filter(description=DESCRIPTION).first()
    if endpoint is None:
        secret = webhook_endpoint_create(
            url=url, event_types=[Event.Kind.CYCLE_SETTLED], description=DESCRIPTION, audit=audit
        ).secret
    else:
        secret = webhook_endpoint_new_secret(endpoint_id=endpoint.id, audit=audit).secret
    WALLET = Wallet(base_url=base_url.rstrip("/"), token=token, secret=secret)
    return WALLET


@csrf_exempt
@require_POST
def webhook(request):
    wallet = WALLET
    if wallet is None:
        return HttpResponseNotFound("No demo wallet here.")
    try:
        payload = Webhook(wallet.secret).verify(request.body, dict(request.headers))
    except Exception as exc:  # forged, altered or stale: refused, as a real receiver would
        return HttpResponse(f"refused: {exc}", status=400, content_type="text/plain")
    data = payload.get("data") or {}
    if payload.get("type") == Event.Kind.CYCLE_SETTLED and data.get("participant_count"):
        threading.Thread(
            target=_apply_in_thread, args=(wallet, int(data["cycle"])), daemon=True
        ).start()
    return HttpResponse(status=204)


def _apply_in_thread(wallet: Wallet, cycle_id: int) -> None:
    try:
        apply_over_http(wallet, cycle_id)
    except Exception:
        logger.exception("the demo wallet could not apply cycle %s", cycle_id)
    finally:
        connection.close()


def _call(wallet: Wallet, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(
        wallet.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {wallet.token}", "Content-Type": "application/json"},
    )
    return urllib.request.urlopen(request, timeout=30)


def apply_over_http(wallet: Wallet, cycle_id: int) -> dict:
    """Pulls the cycle's apportionments through the feed, checks it has them all, and
    acknowledges them; returns the acknowledgement's answer."""
    with _call(wallet, "GET", f"/api/v1/engine/cycles/{cycle_id}/apportionments") as answer:
        count, total = 0, Decimal(0)
        for line in answer:
            row = json.loads(line)
            count += 1
            total += Decimal(row["amount"])
        expected = {
            "count": int(answer.headers["Apportionment-Count"]),
            "total": answer.headers["Apportionment-Total"],
            "root": answer.headers["Apportionment-Root"],
        }
    if count != expected["count"] or total != Decimal(expected["total"]):
        raise RuntimeError(f"cycle {cycle_id}: received {count} rows totalling {total}, "
                           f"the feed says {expected}")  # fmt: skip
    # (A real wallet moves each amount from the trader's profit here, then says so.)
    with _call(wallet, "POST", f"/api/v1/engine/cycles/{cycle_id}/applied", expected) as answer:
        result = json.load(answer)
    wallet.applied.append(cycle_id)
    logger.info("demo wallet: applied cycle %s (%s apportionments)", cycle_id, count)
    return result


def apply_history(*, now_of) -> int:
    """For the demo's history (loaded before the wallet runs): every settled cycle with
    participants acknowledged as the wallet would have, a few minutes after it settled."""
    applied = 0
    cycles = SettlementCycle.objects.select_related("fund__asset").filter(
        status=SettlementCycle.Status.SETTLED, participant_count__gt=0, application__isnull=True
    )
    for cycle in cycles:
        cycle_apply(
            cycle=cycle, count=cycle.participant_count, total_units=cycle.apportioned_units,
            root=cycle.apportionment_root, token=None, now=now_of(cycle),
        )  # fmt: skip
        applied += 1
    return applied
