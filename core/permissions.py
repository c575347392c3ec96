"""The API honours the admin's permissions (PRODUCT.md "API conventions").

`ModelPermissions` is the API's default permission class (settings REST_FRAMEWORK): every view gets it
unless it says otherwise. A request needs Django's permission of the view's model for what it does:

    GET, HEAD, OPTIONS -> view      POST -> add            PUT, PATCH -> change      DELETE -> delete

An action on one object (a POST to a URL that names the object, e.g. `/campaigns/{id}/send`) changes
it, so it needs `change`; a list exported as a file (`?format=csv`) needs `change` too (an export
carries everything out, PRODUCT.md counts it among the actions). Users get permissions through their
groups (the Admin and Marketer roles included), superusers have all of them. Without them the answer
is 403 and nothing happens.

A view names its model and, where the default does not fit, what each method needs:

    class CampaignSendView(APIView):
        permission_model = Campaign                      # or "campaigns.Campaign"
        model_permissions = {"POST": "change"}           # an action name of permission_model,
                                                         # or a full "app_label.codename", or a tuple

Keys are HTTP methods, a viewset's action names (`"list"`, `"send"`, ...) and `"export"`. A view
without `permission_model` falls back to its `queryset`'s model, then its serializer's `Meta.model`;
one that names no model at all is open to superusers only (fail closed), and the permission matrix
test says which view to fix. The OpenAPI schema states each operation's permission
(core.openapi.AutoSchema).
"""

from django.apps import apps
from rest_framework.permissions import BasePermission

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}
VIEWSET_ACTIONS = {
    "list": "view",
    "retrieve": "view",
    "create": "add",
    "update": "change",
    "partial_update": "change",
    "destroy": "delete",
}
EXPORT_FORMATS = {"csv"}
ACTIONS = {"view", "add", "change", "delete"}


def permission_model(view):
    """The model whose permissions guard the view, or None."""
    model = getattr(view, "permission_model", None)
    if isinstance(model, str):
        return apps.get_model(model)
    if model is not None:
        return model
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.model
    serializer_class = getattr(view, "serializer_class", None)
    meta = getattr(serializer_class, "Meta", None)
    return getattr(meta, "model", None)


def _needed(model, what):
    names = (what,) if isinstance(what, str) else tuple(what)
    needed = []
    for name in names:
        if "." in name:
            needed.append(name)
        elif name in ACTIONS and model is not None:
            needed.append(f"{model._meta.app_label}.{name}_{model._meta.model_name}")
        else:
            return None  # an action name without a model: nothing to check against
    return tuple(needed)


def required_permissions(view, method, *, action=None, on_object=False, export=False):
    """The permissions ("app_label.codename") a request needs, or None when the view names no model.

    `action` is a viewset's action, `on_object` whether the URL names one object, `export` whether the
    response is a file export."""
    declared = getattr(view, "model_permissions", None) or {}
    method = method.upper()
    if export:
        what = declared.get("export", "change")
    elif action and action in declared:
        what = declared[action]
    elif method in declared:
        what = declared[method]
    elif action in VIEWSET_ACTIONS:
        what = VIEWSET_ACTIONS[action]
    elif method == "POST" and (on_object or action):
        what = "change"  # an action on an existing object
    else:
        what = METHOD_ACTIONS.get(method, "change")
    return _needed(permission_model(view), what)


def is_export(request):
    renderer = getattr(request, "accepted_renderer", None)
    return request.method in ("GET", "HEAD") and getattr(renderer, "format", None) in EXPORT_FORMATS


class ModelPermissions(BasePermission):
    """Authenticated, and holding the model permission the request needs (see the module's doc)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = required_permissions(
            view,
            request.method,
            action=getattr(view, "action", None),
            on_object=bool(getattr(view, "kwargs", None)),
            export=is_export(request),
        )
        if needed is None:  # the view names no model: fail closed
            return user.is_active and user.is_superuser
        return user.has_perms(needed)
