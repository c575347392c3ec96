"""Every /api/ endpoint except the token endpoint, the schema and the docs needs authentication."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"/api/auth/token", "/api/schema/", "/api/docs/"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _concrete(route):
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"<(?:int:)?[a-z_]+>", "1", route)
    route = re.sub(r"\(\?P<[a-z_]+>[^)]*\)", "1", route)
    route = route.replace("\\.", ".").replace("/?", "/")
    return "/" + route


def api_paths():
    paths = set()
    for route in _walk(get_resolver("crm_project.urls").url_patterns):
        path = _concrete(route)
        if path.startswith("/api/") and "format" not in route and "(" not in path and "[" not in path:
            paths.add(path)
    return sorted(paths)


def test_it_finds_the_api_endpoints():
    assert "/api/auth/token" in api_paths()


@pytest.mark.parametrize("path", [p for p in api_paths() if p not in PUBLIC])
def test_it_answers_401_without_a_token(anon_api, path):
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(anon_api, method)(path, {}, format="json")
        assert response.status_code in (401, 405), (method, path, response.status_code)
        if response.status_code == 405:
            continue
        assert response.status_code == 401


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_it_serves_the_public_endpoints_without_a_token(anon_api, path):
    method = anon_api.post if path == "/api/auth/token" else anon_api.get
    assert method(path, {}, format="json").status_code in (200, 400)


def test_it_revokes_a_token(api):
    assert api.get("/api/schema/").status_code == 200
    assert api.delete("/api/auth/token/current").status_code == 204
    assert api.delete("/api/auth/token/current").status_code == 401
