from tests.conftest import PASSWORD, TENANT_A


def test_it_returns_a_token_for_valid_credentials(anon_api, admin_user):
    response = anon_api.post(
        "/api/auth/token", {"username": f"admin@{TENANT_A['domain']}", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


def test_it_refuses_wrong_credentials_with_400(anon_api, admin_user):
    response = anon_api.post(
        "/api/auth/token", {"username": f"admin@{TENANT_A['domain']}", "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
