"""drf-spectacular post-processing: document the responses every authenticated endpoint can give."""

COMMON = {
    "401": "Not authenticated (no, invalid or revoked token).",
    "403": "The user's role does not allow this.",
    "429": "Too many requests.",
}
BODY = {"413": "The request body is too large.", "415": "The request body is not JSON."}


def document_common_responses(result, generator, request, public):
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            secured = operation.get("security") != [] and path != "/api/auth/token"
            extra = dict(COMMON) if secured else {"429": COMMON["429"]}
            if method == "get" and secured:
                extra.setdefault("404", "Not found (also an out-of-range page of a list).")
            if method in {"post", "put", "patch"}:
                extra.update(BODY)
                extra.setdefault("400", "Invalid input: `{field: [messages]}`.")
            for code, description in extra.items():
                responses.setdefault(code, {"description": description})
    return result
