"""A settled cycle's inputs, anonymised, for anyone to recompute its settlement (docs/rules.md
§6.3; docs/check_ledger.py --cycle): every system loss of the cycle (contract, closed at, amount)
and every profitable position in rank order (rank, commitment, profit, apportionment: 0 below the
threshold). No account and no position id: a position appears only as its commitment, which only
its trader can tie to it (fund/merkle.py, form 2; cycles settled before, form 1, publish no
commitment). Streamed as JSON Lines (the default) or CSV (`?format=csv`), row by row."""

from collections.abc import Iterator

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from fund import selectors
from fund.api.csv import rows_response
from fund.api.public import PublicMixin
from fund.api.renderers import CSVRenderer, JSONLinesRenderer
from fund.api.schema import ERROR, PUBLIC
from fund.lookups import cycle_or_404
from fund.models import SettlementCycle

FORMAT = OpenApiParameter(
    "format", str, enum=["jsonl", "csv"], description="jsonl (the default): a JSON object a line."
)


def _stream(request, name: str, header: list[str], rows: Iterator[dict]):
    response = rows_response(request, name, header, rows)
    response["Cache-Control"] = "public, max-age=86400"  # a settled cycle never changes
    return response


def _settled(pk: int) -> SettlementCycle:
    cycle = cycle_or_404(cycle_id=pk)
    if cycle.status != SettlementCycle.Status.SETTLED:
        raise NotFound(f"Cycle {cycle.id} is not settled: its inputs are published when it is.")
    return cycle


class _InputsView(PublicMixin, APIView):
    renderer_classes = [JSONLinesRenderer, CSVRenderer]


class CycleLossesView(_InputsView):
    @extend_schema(
        tags=["public"],
        summary="A settled cycle's system losses: contract, closed at, loss (JSON Lines or CSV)",
        parameters=[FORMAT],
        responses={(200, "application/jsonl"): OpenApiTypes.STR,
                   (200, "text/csv"): OpenApiTypes.STR, 400: ERROR, 404: ERROR, **PUBLIC},
    )  # fmt: skip
    def get(self, request, pk):
        cycle = _settled(pk)
        return _stream(
            request,
            f"{cycle.fund.asset.code}-cycle-{cycle.id}-losses",
            ["contract", "closed_at", "loss"],
            selectors.cycle_losses_public(cycle=cycle),
        )


class CyclePositionsView(_InputsView):
    @extend_schema(
        tags=["public"],
        summary="A settled cycle's profitable positions in rank order: rank, commitment, profit, "
        "apportionment (JSON Lines or CSV)",
        parameters=[FORMAT],
        responses={(200, "application/jsonl"): OpenApiTypes.STR,
                   (200, "text/csv"): OpenApiTypes.STR, 400: ERROR, 404: ERROR, **PUBLIC},
    )  # fmt: skip
    def get(self, request, pk):
        cycle = _settled(pk)
        return _stream(
            request,
            f"{cycle.fund.asset.code}-cycle-{cycle.id}-positions",
            ["rank", "commitment", "profit", "amount"],
            selectors.cycle_positions_public(cycle=cycle),
        )
