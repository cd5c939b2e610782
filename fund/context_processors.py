"""What every page's header needs: the logged-in trader's unread notifications."""

from fund.services.notices import notices_unread_count


def notices(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_notices": lambda: notices_unread_count(user)}
