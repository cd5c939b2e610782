from django.shortcuts import render

from fund import selectors


def overview(request):
    return render(
        request,
        "fund/overview.html",
        {
            "funds": selectors.fund_overview(),
            "records": selectors.records_latest(),
            "cycles": selectors.cycles_latest_settled(),
        },
    )
