"""The API reads its list filters with the pages' FilterSets (fund/filters.py); in a query
string written by hand, a parameter sent empty is a mistake rather than "no filter"."""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError


class FilterBackend(DjangoFilterBackend):
    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            empty = [
                name
                for name in filterset.filters
                if "" in request.query_params.getlist(name, [None])
            ]
            if empty:
                raise ValidationError(
                    {name: ["Give a value, or leave the parameter out."] for name in empty}
                )
        return filterset
