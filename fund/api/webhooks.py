"""Webhook endpoints through the admin API (staff with the settlement permission): the same
services as the console's (fund/services/webhooks.py), every change audited. A secret is in the
answer that makes it, and never again."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from fund.api.admin import private
from fund.api.pagination import cursor
from fund.api.permissions import IsSettlementStaff
from fund.api.schema import DENIED, ERROR
from fund.models import Event, WebhookDelivery, WebhookEndpoint
from fund.services import webhooks
from fund.services.audit import Audit

FIELDS = {"url", "event_types", "description", "active"}


class EndpointOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "event_types", "active", "disabled_reason",
            "disabled_at", "failing_since", "cursor", "created_at",
        ]  # fmt: skip


class EndpointMadeOut(EndpointOut):
    secret = serializers.CharField(help_text="Shown this once.")

    class Meta(EndpointOut.Meta):
        fields = [*EndpointOut.Meta.fields, "secret"]


class EndpointIn(serializers.Serializer):
    url = serializers.CharField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.Kind.choices), min_length=1
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class DeliveryOut(serializers.ModelSerializer):
    event_seq = serializers.IntegerField(source="event.seq")
    event_type = serializers.CharField(source="event.kind")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "event_seq", "event_type", "status", "attempts", "next_attempt_at",
            "last_attempt_at", "last_status", "last_latency_ms", "last_error", "delivered_at",
            "created_at",
        ]  # fmt: skip


def _fields(data, *, partial: bool) -> dict:
    """The request's fields, checked for shape (the service checks their values); 400 naming
    each bad field."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": "Send an object."})
    unknown = sorted(k for k in data if k not in FIELDS)
    if unknown:
        raise ValidationError({unknown[0][:60]: "No such field."})
    if not partial:
        missing = [k for k in ("url", "event_types") if k not in data]
        if missing:
            raise ValidationError(dict.fromkeys(missing, "This field is required."))
    return {k: data[k] for k in FIELDS if k in data}


def _endpoint(pk: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=pk).first()
    if endpoint is None:
        raise NotFound(f"There is no webhook endpoint {pk}.")
    return endpoint


@private
class WebhookEndpointsView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="The webhook endpoints",
        responses={200: EndpointOut(many=True), **DENIED},
    )
    def get(self, request):
        return Response(EndpointOut(WebhookEndpoint.objects.order_by("id"), many=True).data)

    @extend_schema(
        tags=["admin"],
        summary="Add a webhook endpoint (its secret is in this answer only)",
        request=EndpointIn,
        responses={201: EndpointMadeOut, 400: ERROR, **DENIED},
    )
    def post(self, request):
        fields = _fields(request.data, partial=False)
        if "active" in fields:
            raise ValidationError({"active": "A new endpoint is switched on; change it after."})
        made = webhooks.webhook_endpoint_create(audit=Audit.from_request(request), **fields)
        body = {**EndpointOut(made.endpoint).data, "secret": made.secret}
        return Response(body, status=status.HTTP_201_CREATED)


@private
class WebhookEndpointView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="One webhook endpoint",
        responses={200: EndpointOut, 404: ERROR, **DENIED},
    )
    def get(self, request, pk):
        return Response(EndpointOut(_endpoint(pk)).data)

    @extend_schema(
        tags=["admin"],
        summary="Change a webhook endpoint, or switch it off or on",
        request=EndpointIn(partial=True),
        responses={200: EndpointOut, 400: ERROR, 404: ERROR, **DENIED},
    )
    def patch(self, request, pk):
        _endpoint(pk)
        fields = _fields(request.data, partial=True)
        endpoint = webhooks.webhook_endpoint_update(
            endpoint_id=pk, audit=Audit.from_request(request), **fields
        )
        return Response(EndpointOut(endpoint).data)


@private
class WebhookSecretView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Replace a webhook endpoint's secret (the new one is in this answer only)",
        request=None,
        responses={200: EndpointMadeOut, 404: ERROR, **DENIED},
    )
    def post(self, request, pk):
        _endpoint(pk)
        made = webhooks.webhook_endpoint_new_secret(
            endpoint_id=pk, audit=Audit.from_request(request)
        )
        return Response({**EndpointOut(made.endpoint).data, "secret": made.secret})


@private
class WebhookDeliveriesView(generics.ListAPIView):
    permission_classes = [IsSettlementStaff]
    serializer_class = DeliveryOut
    pagination_class = cursor("-id")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema's generator
            return WebhookDelivery.objects.none()
        endpoint = _endpoint(self.kwargs["pk"])
        rows = endpoint.deliveries.select_related("event")
        wanted = self.request.query_params.get("status")
        if wanted is not None:
            if wanted not in WebhookDelivery.Status.values:
                raise ValidationError(
                    {"status": "Choose " + ", ".join(WebhookDelivery.Status.values) + "."}
                )
            rows = rows.filter(status=wanted)
        return rows

    @extend_schema(
        tags=["admin"],
        summary="A webhook endpoint's delivery log, newest first",
        parameters=[OpenApiParameter("status", str, enum=WebhookDelivery.Status.values)],
        responses={200: DeliveryOut(many=True), 400: ERROR, 404: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@private
class WebhookResendView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Send a delivery again, due now with a new three-day schedule",
        request=None,
        responses={202: DeliveryOut, 404: ERROR, **DENIED},
    )
    def post(self, request, pk, delivery):
        _endpoint(pk)  # (an id beyond the column's range is no endpoint's, not an error)
        try:
            sent = webhooks.webhook_delivery_resend(
                delivery_id=delivery, endpoint_id=pk, audit=Audit.from_request(request)
            )
        except WebhookDelivery.DoesNotExist:
            raise NotFound(f"Endpoint {pk} has no delivery {delivery}.") from None
        sent = WebhookDelivery.objects.select_related("event").get(pk=sent.pk)
        return Response(DeliveryOut(sent).data, status=status.HTTP_202_ACCEPTED)
