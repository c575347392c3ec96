def tenant(request):
    current = getattr(request, "tenant", None)
    return {"current_tenant": current, "is_public_host": current is None or current.schema_name == "public"}
