import functools

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from pipelines_ui.accounts import throttling
from pipelines_ui.accounts.services import switch_workspace


def throttle_sign_ins(view):
    """Wrap a sign-in view (ours, the admin's): a POST is refused with 429 while its username
    or its client address has too many recent failures, and otherwise counts as a failure
    unless it signed that username in (throttling.py)."""

    @functools.wraps(view)
    def throttled(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        attempt = throttling.begin(username, request.META.get("REMOTE_ADDR", ""))
        if isinstance(attempt, throttling.Refusal):
            return too_many_failures(request, attempt)
        response = view(request, *args, **kwargs)
        if signed_in_as(request, username):
            throttling.succeeded(attempt)
        return response

    return throttled


def signed_in_as(request, username: str) -> bool:
    """Whether the request's user is now `username` (as the throttle spells it): a login() in
    the view sets request.user."""
    user = request.user
    return user.is_authenticated and (throttling.username_key(user.get_username())
                                      == throttling.username_key(username))


def too_many_failures(request, refusal: throttling.Refusal):
    response = render(request, "accounts/login.html",
                      {"refusal": refusal.message, "next": request.POST.get("next", "")},
                      status=429)
    response["Retry-After"] = str(refusal.wait_s)
    return response


login = throttle_sign_ins(auth_views.LoginView.as_view(
    template_name="accounts/login.html", redirect_authenticated_user=True
))
logout = auth_views.LogoutView.as_view()


@login_required
@require_POST
def switch(request):
    switch_workspace(request, int(request.POST.get("workspace", 0) or 0))
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    return redirect(target)
