"""Traders: their own statements, how each apportionment was computed and its inclusion proof,
and their API tokens. Another trader's id is a 404. Nothing here may be cached on the way."""

from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from fund import selectors
from fund.api import serializers as s
from fund.api.csv import CSVListMixin
from fund.api.pagination import cursor
from fund.api.permissions import IsTrader
from fund.api.schema import CSV_PARAMETER, DENIED, ERROR
from fund.api.throttling import ProofThrottle
from fund.filters import StatementFilter
from fund.lookups import statement_or_404
from fund.models import PositionProfit
from fund.presentation import apportionment_computation
from fund.proofs import apportionment_proof, position_proof
from statements.models import ApiToken, Statement
from statements.services import api_token_create, api_token_revoke

# Every answer here (errors and downloads too) is one trader's own: Cache-Control: private,
# no-store, so no shared cache or browser history keeps it.
private = method_decorator(cache_control(private=True, no_store=True), name="dispatch")
StatementPagination = cursor("-id", size=50, max_size=500)  # unique: pages never skip or repeat
PROOF = PolymorphicProxySerializer(
    "PositionOrApportionmentProof", [s.PositionProofOut, s.ProofOut], resource_type_field_name=None
)


@private
class MyStatementsView(CSVListMixin, generics.ListAPIView):
    permission_classes = [IsTrader]
    serializer_class = s.StatementOut
    pagination_class = StatementPagination
    filterset_class = StatementFilter
    queryset = Statement.objects.none()  # for the schema; get_queryset builds the real one
    csv_header = ["id", "created_at", "type", "asset", "amount", "cycle", "position_id",
                  "description"]  # fmt: skip

    def get_queryset(self):
        return selectors.statements_of(account=self.request.user.trader_account)

    def csv_filename(self) -> str:
        return "statements.csv"

    def csv_row(self, r) -> list:
        apportionment = getattr(r, "apportionment", None)
        cycle, position = (
            (apportionment.cycle_id, apportionment.position.position_id)
            if apportionment is not None
            else ("", "")
        )
        return [r.id, r.created_at.isoformat(), r.type, r.asset.code,
                r.asset.format(r.amount_units), cycle, position, r.description]  # fmt: skip

    @extend_schema(
        tags=["traders"],
        summary="My statements, newest first",
        parameters=[CSV_PARAMETER],
        responses={200: s.StatementOut(many=True), 400: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@private
class MyStatementView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"],
        summary="One of my statements, with how an apportionment was computed",
        responses={200: s.StatementDetailOut, 404: ERROR, **DENIED},
    )
    def get(self, request, pk):
        statement = statement_or_404(account=request.user.trader_account, statement_id=pk)
        apportionment = getattr(statement, "apportionment", None)
        computation = None
        if apportionment is not None:
            computation = s.ComputationOut(
                apportionment_computation(apportionment=apportionment)
            ).data
        return Response(s.StatementDetailOut(statement, context={"computation": computation}).data)


@private
class MyStatementProofView(APIView):
    permission_classes = [IsTrader]
    renderer_classes = [JSONRenderer]  # a download, whatever the browser's Accept header says
    throttle_classes = [ProofThrottle]

    @extend_schema(
        tags=["traders"],
        summary="The inclusion proof of my apportionment in its cycle's Merkle root",
        description="Cycles settled with a root of form 2: the position proof (with the salt); "
        "cycles settled before (form 1): the apportionment proof.",
        responses={
            200: PROOF,
            404: ERROR,
            **DENIED,
            429: OpenApiResponse(
                description="More than 30 proofs a minute: retry after Retry-After seconds."
            ),
        },
    )
    def get(self, request, pk):
        statement = statement_or_404(account=request.user.trader_account, statement_id=pk)
        apportionment = getattr(statement, "apportionment", None)
        if apportionment is None:
            raise NotFound("This statement is not an apportionment: there is nothing to prove.")
        return proof_download(request, apportionment.position)


def proof_download(request, position):
    """The position's proof in its cycle's root, of the cycle's form, as a JSON download."""
    cycle = position.cycle
    if cycle.root_format == 1:
        proof = apportionment_proof(apportionment=position.apportionment)
        out, kind = s.ProofOut, "apportionment"
    else:
        proof, out, kind = position_proof(position=position), s.PositionProofOut, "position"
    proof["cycle_url"] = request.build_absolute_uri(reverse("api:cycle", args=[cycle.id]))
    response = Response(out(proof).data)
    name = f"{kind}-proof-{proof['asset']}-cycle-{proof['cycle']}-rank-{proof['rank']}"
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


PositionPagination = cursor("-id", size=50, max_size=500)


def position_row(request, position) -> dict:
    apportionment = getattr(position, "apportionment", None)
    asset = position.cycle.fund.asset
    return {
        "id": position.id,
        "cycle_id": position.cycle_id,
        "cycle": position.cycle,
        "position_id": position.position_id,
        "contract": position.contract,
        "profit_units": position.profit_units,
        "apportioned": apportionment is not None,
        "amount": asset.format(apportionment.amount_units if apportionment else 0),
        "statement": apportionment.statement_id if apportionment else None,
        "proof_url": request.build_absolute_uri(
            reverse("api:my-position-proof", args=[position.id])
        ),
    }


@private
class MyPositionsView(generics.ListAPIView):
    permission_classes = [IsTrader]
    serializer_class = s.PositionOut
    pagination_class = PositionPagination
    queryset = PositionProfit.objects.none()  # for the schema; get_queryset builds the real one

    def get_queryset(self):
        return selectors.positions_of(account=self.request.user.trader_account)

    def get_serializer(self, page, many=False, **kwargs):
        rows = [position_row(self.request, p) for p in page] if many else page
        return s.PositionOut(rows, many=many, **kwargs)

    @extend_schema(
        tags=["traders"],
        summary="My profitable positions in settled cycles, each with its proof (newest first)",
        responses={200: s.PositionOut(many=True), 400: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@private
class MyPositionProofView(APIView):
    permission_classes = [IsTrader]
    renderer_classes = [JSONRenderer]
    throttle_classes = [ProofThrottle]

    @extend_schema(
        tags=["traders"],
        summary="The inclusion proof of my profitable position in its settled cycle's root",
        description="Form 2 cycles: any profitable position, apportioned or not, with its salt. "
        "Cycles settled before (form 1): an apportioned position's apportionment proof.",
        responses={
            200: PROOF,
            404: ERROR,
            **DENIED,
            429: OpenApiResponse(description="More than 30 proofs a minute."),
        },
    )
    def get(self, request, pk):
        position = selectors.positions_of(account=request.user.trader_account).filter(pk=pk).first()
        if position is None:
            raise NotFound("No profitable position of yours in a settled cycle has this id.")
        if position.cycle.root_format == 1 and getattr(position, "apportionment", None) is None:
            raise NotFound(
                "This cycle was settled before every profitable position was in its root: only "
                "apportionments have proofs there."
            )
        return proof_download(request, position)


@private
class MyTokensView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"], summary="My API tokens", responses={200: s.TokenOut(many=True), **DENIED}
    )
    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user, kind=ApiToken.Kind.PERSONAL)
        return Response(s.TokenOut(tokens, many=True).data)

    @extend_schema(
        tags=["traders"],
        summary="Make an API token (shown once)",
        request=s.TokenIn,
        responses={201: s.TokenCreatedOut, 400: ERROR, **DENIED},
    )
    def post(self, request):
        name = request.data.get("name") if isinstance(request.data, dict) else None
        if not isinstance(name, str):
            raise ValidationError({"name": "Give the token a name (text)."})
        row, token = api_token_create(user=request.user, kind=ApiToken.Kind.PERSONAL, name=name)
        return Response({**s.TokenOut(row).data, "token": token}, status=status.HTTP_201_CREATED)


@private
class MyTokenView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"],
        summary="Revoke one of my API tokens",
        responses={204: None, 404: ERROR, **DENIED},
    )
    def delete(self, request, prefix):
        try:
            api_token_revoke(prefix=prefix, user=request.user)
        except ValidationError:
            return Response({"detail": "No such token."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)
