"""JSON conveniences beside a fund's log tiles (fund/views_log.py): a record's inclusion proof in
the tree of a given size, and the consistency proof between two sizes (RFC 9162 §2.1.3, §2.1.4).
Hashes are 64 hex digits; the root of each size is given so a client can compare it with a
signed checkpoint. A size beyond the tree, a first size above the second, or anything that is
not a whole number: 400 with the field's message."""

from django import forms
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from fund.api.public import PublicMixin
from fund.api.schema import ERROR, PUBLIC
from fund.filters import IdField
from fund.lookups import fund_log_or_404
from fund.services.transparency import (
    checkpoint_latest,
    log_entry,
    log_origin,
    log_size,
    log_tree,
)
from fund.tlog import leaf_hash


class _SizesForm(forms.Form):
    """Sizes of a tree of `tree_size` leaves, each from 1 to it."""

    def __init__(self, data, *, tree_size: int, default_size: int | None = None):
        super().__init__(data)
        self.tree_size = tree_size
        self.default_size = tree_size if default_size is None else default_size

    def _size(self, name: str, default: int | None = None) -> int | None:
        """The field's size, its default when it is left out; None after adding its error."""
        if name in self.errors:
            return None
        value = self.cleaned_data.get(name)
        if value is None:
            if default is not None:
                return default
            self.add_error(name, forms.ValidationError("This field is required.", "required"))
            return None
        if not 1 <= value <= self.tree_size:
            self.add_error(name, f"Give a size from 1 to {self.tree_size}, the log's size now.")
            return None
        return value


class InclusionForm(_SizesForm):
    seq = IdField()
    size = IdField(required=False)

    def clean(self):
        data = super().clean()
        seq, size = self._size("seq"), self._size("size", self.default_size)
        if seq is not None and size is not None and seq > size:
            self.add_error("size", f"Record #{seq} is not in the tree of size {size}.")
        data["seq"], data["size"] = seq, size
        return data


class ConsistencyForm(_SizesForm):
    first = IdField()
    second = IdField(required=False)

    def clean(self):
        data = super().clean()
        first, second = self._size("first"), self._size("second", self.default_size)
        if first is not None and second is not None and first > second:
            self.add_error("second", f"Give a size from {first} (the first size) on.")
        data["first"], data["second"] = first, second
        return data


def _valid(form):
    if not form.is_valid():
        raise ValidationError(form.errors)
    return form.cleaned_data


def _hex(hashes) -> list[str]:
    return [h.hex() for h in hashes]


Hashes = serializers.ListField(child=serializers.CharField())


class LogInclusionView(PublicMixin, APIView):
    @extend_schema(
        tags=["public"],
        summary="A record's inclusion proof in the fund's log at a tree size",
        parameters=[
            OpenApiParameter("seq", int, required=True, description="The record's seq."),
            OpenApiParameter(
                "size", int, description="The tree size (default: the latest checkpoint's)."
            ),
        ],
        responses={
            200: inline_serializer(
                "LogInclusionOut",
                {
                    "origin": serializers.CharField(),
                    "size": serializers.IntegerField(),
                    "seq": serializers.IntegerField(),
                    "index": serializers.IntegerField(),
                    "entry": serializers.CharField(),
                    "leaf_hash": serializers.CharField(),
                    "proof": Hashes,
                    "root": serializers.CharField(),
                },
            ),
            400: ERROR,
            404: ERROR,
            **PUBLIC,
        },
    )
    def get(self, request, asset):
        fund = fund_log_or_404(asset_code=asset)
        size_now = log_size(fund)
        # The latest checkpoint's size is only the default: not read when a size is asked for.
        latest = None if request.query_params.get("size") else checkpoint_latest(fund)
        data = _valid(
            InclusionForm(
                request.query_params,
                tree_size=size_now,
                default_size=latest.size if latest and latest.size else size_now,
            )
        )
        seq, size = data["seq"], data["size"]
        entry = log_entry(fund=fund, seq=seq)
        if entry is None:
            raise NotFound(f"The {fund.asset.code} fund has no record #{seq}.")
        tree = log_tree(fund=fund, size=size)
        return Response(
            {
                "origin": log_origin(fund.asset.code),
                "size": size,
                "seq": seq,
                "index": seq - 1,
                "entry": entry.decode(),
                "leaf_hash": leaf_hash(entry).hex(),
                "proof": _hex(tree.inclusion_proof(seq - 1)),
                "root": tree.root().hex(),
            }
        )


class LogConsistencyView(PublicMixin, APIView):
    @extend_schema(
        tags=["public"],
        summary="The consistency proof of the fund's log between two tree sizes",
        parameters=[
            OpenApiParameter("first", int, required=True, description="The older size."),
            OpenApiParameter("second", int, description="The newer size (default: now)."),
        ],
        responses={
            200: inline_serializer(
                "LogConsistencyOut",
                {
                    "origin": serializers.CharField(),
                    "first": serializers.IntegerField(),
                    "second": serializers.IntegerField(),
                    "first_root": serializers.CharField(),
                    "second_root": serializers.CharField(),
                    "proof": Hashes,
                },
            ),
            400: ERROR,
            404: ERROR,
            **PUBLIC,
        },
    )
    def get(self, request, asset):
        fund = fund_log_or_404(asset_code=asset)
        data = _valid(ConsistencyForm(request.query_params, tree_size=log_size(fund)))
        first, second = data["first"], data["second"]
        tree = log_tree(fund=fund, size=second)
        return Response(
            {
                "origin": log_origin(fund.asset.code),
                "first": first,
                "second": second,
                "first_root": tree.hash(0, first).hex(),
                "second_root": tree.root().hex(),
                "proof": _hex(tree.consistency_proof(first)),
            }
        )
