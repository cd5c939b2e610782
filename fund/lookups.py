"""What a URL names, or a 404: the objects pages and API views look up by code, id or seq."""

import re

from django.http import Http404
from django.shortcuts import get_object_or_404

from fund import selectors
from fund.models import Fund, FundRecord, SettlementCycle
from statements.models import Statement, TraderAccount

# An asset's code as a URL may name it; anything else (a NUL byte PostgreSQL cannot even
# compare, say) is no fund's.
ASSET_CODE = re.compile(r"[A-Za-z0-9]{1,16}")


def _code(asset_code: str) -> str:
    if not ASSET_CODE.fullmatch(asset_code):
        raise Http404("No such margin asset.")
    return asset_code.upper()


def fund_or_404(*, asset_code: str) -> Fund:
    return get_object_or_404(selectors.funds_public(), asset__code=_code(asset_code))


def fund_log_or_404(*, asset_code: str) -> Fund:
    """The fund and its asset only (one query): what the log's endpoints need, answered often."""
    return get_object_or_404(Fund.objects.select_related("asset"), asset__code=_code(asset_code))


def cycle_or_404(*, cycle_id: int) -> SettlementCycle:
    return get_object_or_404(selectors.cycles_public(), pk=cycle_id)


def record_or_404(*, asset_code: str, seq: int) -> FundRecord:
    return get_object_or_404(
        selectors.records_public(), fund__asset__code=_code(asset_code), seq=seq
    )


def statement_or_404(*, account: TraderAccount, statement_id: int) -> Statement:
    """One of the trader's statements; any other id is a 404, whoever it belongs to."""
    return get_object_or_404(selectors.statements_of(account=account), pk=statement_id)
