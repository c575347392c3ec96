"""The few pages allauth's flow may send a browser to; each leads back to the admin login."""

from django.contrib import messages
from django.shortcuts import redirect


def admin_login(request):
    return redirect("admin:login")


def refused(request):
    messages.error(request, "You cannot be signed in here. Ask one of the account's admins to add you.")
    return redirect("admin:login")


def cancelled(request):
    messages.info(request, "Signing in was cancelled.")
    return redirect("admin:login")
