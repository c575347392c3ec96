"""drf-spectacular: the permission each operation needs, and the responses every endpoint can give."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.permissions import AllowAny

from .permissions import EXPORT_FORMATS, ModelPermissions, required_permissions

COMMON = {
    "401": "Not authenticated (no, invalid, revoked or expired token).",
    "403": "The user's role does not allow this.",
    "429": "Too many requests.",
    "503": "The database is unavailable, or the request took longer than a web request may; retry later.",
}
BODY = {"413": "The request body is too large.", "415": "The request body is not JSON."}


def _perm_text(perms):
    return " and ".join(f"`{perm}`" for perm in perms)


class AutoSchema(SpectacularAutoSchema):
    """Each operation's description ends with the permission it needs (core.permissions), and the
    operation carries it as `x-permissions` (a list of "app_label.codename"; empty when none)."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if not operation:
            return operation
        text, perms = self._permission()
        operation["description"] = f"{operation.get('description', '')}\n\n**Permission:** {text}".strip()
        operation["x-permissions"] = perms
        return operation

    def _permission(self):
        view = self.view
        classes = getattr(view, "permission_classes", [])
        if any(issubclass(cls, AllowAny) for cls in classes):
            return "none (no authentication needed).", []
        if not any(issubclass(cls, ModelPermissions) for cls in classes):
            return "any authenticated user.", []
        kwargs = {"action": getattr(view, "action", None), "on_object": "{" in self.path}
        perms = required_permissions(view, self.method, **kwargs)
        if perms is None:
            return "superusers only (the view names no model; see core.permissions).", ["superuser"]
        text = _perm_text(perms)
        exports = {renderer.format for renderer in view.get_renderers()} & EXPORT_FORMATS
        if self.method == "GET" and exports:
            export = required_permissions(view, self.method, export=True, **kwargs)
            text += f"; a file export (`?format={min(exports)}`) needs {_perm_text(export)}"
        return text + " (through the user's groups, e.g. the Admin and Marketer roles).", list(perms)


def document_common_responses(result, generator, request, public):
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            secured = operation.get("security") != [] and path != "/api/auth/token"
            extra = dict(COMMON) if secured else {"429": COMMON["429"], "503": COMMON["503"]}
            if method == "get" and secured:
                extra.setdefault("404", "Not found (also a page past the end of a list).")
            if method in {"post", "put", "patch"}:
                extra.update(BODY)
                extra.setdefault("400", "Invalid input: `{field: [messages]}`.")
            for code, description in extra.items():
                responses.setdefault(code, {"description": description})
    return result
