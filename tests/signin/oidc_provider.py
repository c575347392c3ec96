"""A small but real OpenID Connect provider on loopback, for the sign-in tests.

It speaks the authorization-code flow over real HTTP (discovery, /authorize with a page where the
"user" picks an account, /token with client authentication and PKCE, /userinfo, /jwks) and signs
RS256 ID tokens with a key of its own (joserfc). Nothing of the exchange is mocked: the service under
test fetches the discovery document, exchanges the code and verifies the token as it would with
Google or Okta.
"""

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey


class Account:
    def __init__(self, email, *, sub=None, verified=True, name="Test User"):
        self.email = email
        self.sub = sub or hashlib.sha256(email.encode()).hexdigest()[:20]
        self.verified = verified
        self.name = name

    def claims(self):
        first, _, last = self.name.partition(" ")
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.verified,
            "name": self.name,
            "given_name": first,
            "family_name": last,
        }


class OIDCProvider:
    def __init__(self):
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.clients = {}  # client_id -> (secret, [redirect_uri prefixes])
        self.accounts = []
        self.codes = {}
        self.tokens = {}
        self.requests = []  # (method, path) seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_client(self, client_id, secret):
        self.clients[client_id] = secret

    def add_account(self, email, **kwargs):
        """An account at the provider (replacing one with the same email)."""
        account = Account(email, **kwargs)
        self.accounts = [known for known in self.accounts if known.email != email] + [account]
        return account

    def account(self, email):
        return next(account for account in self.accounts if account.email == email)

    # --- the flow without a browser (for tests that drive Django's test client) -----------------------
    def authorize(self, authorize_url, email):
        """What the browser would do on /authorize: pick `email`; returns the redirect back (with code)."""
        query = parse_qs(urlsplit(authorize_url).query)
        params = {key: values[0] for key, values in query.items()}
        return self._issue_code(params, self.account(email))

    def _issue_code(self, params, account):
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"params": params, "account": account, "at": time.time()}
        back = {"code": code}
        if "state" in params:
            back["state"] = params["state"]
        return f"{params['redirect_uri']}?{urlencode(back)}"

    def _discovery(self):
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
        }

    def _token(self, form, headers):
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if self.clients.get(client_id) != client_secret:
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        params = grant["params"]
        if params.get("client_id") != client_id or params.get("redirect_uri") != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        challenge = params.get("code_challenge")
        if challenge:
            verifier = form.get("code_verifier", "")
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if digest != challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        account = grant["account"]
        now = int(time.time())
        claims = {**account.claims(), "iss": self.issuer, "aud": client_id, "iat": now, "exp": now + 300}
        if params.get("nonce"):
            claims["nonce"] = params["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)
        access = secrets.token_urlsafe(16)
        self.tokens[access] = account
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, content_type="application/json", headers=()):
                data = (
                    body
                    if isinstance(body, bytes)
                    else (json.dumps(body) if content_type == "application/json" else body).encode()
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _form(self):
                length = int(self.headers.get("Content-Length") or 0)
                return {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}

            def do_GET(self):
                parts = urlsplit(self.path)
                provider.requests.append(("GET", parts.path))
                if parts.path == "/.well-known/openid-configuration":
                    return self._send(200, provider._discovery())
                if parts.path == "/jwks":
                    return self._send(200, {"keys": [provider.key.as_dict(private=False)]})
                if parts.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    account = provider.tokens.get(token)
                    if account is None:
                        return self._send(401, {"error": "invalid_token"})
                    return self._send(200, account.claims())
                if parts.path == "/authorize":
                    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
                    if params.get("client_id") not in provider.clients:
                        return self._send(400, "unknown client", "text/plain")
                    hidden = "".join(
                        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                        for k, v in params.items()
                    )
                    buttons = "".join(
                        f'<button type="submit" name="account" value="{html.escape(a.email)}" '
                        f'data-email="{html.escape(a.email)}">Continue as {html.escape(a.email)}</button>'
                        for a in provider.accounts
                    )
                    page = f"<html><body><h1>Test identity provider</h1><form method='post' action='/authorize'>{hidden}{buttons}</form></body></html>"
                    return self._send(200, page, "text/html; charset=utf-8")
                return self._send(404, {"error": "not_found"})

            def do_POST(self):
                parts = urlsplit(self.path)
                provider.requests.append(("POST", parts.path))
                form = self._form()
                if parts.path == "/authorize":
                    email = form.pop("account", "")
                    location = provider._issue_code(form, provider.account(email))
                    return self._send(302, b"", "text/plain", headers=[("Location", location)])
                if parts.path == "/token":
                    status, body = provider._token(form, self.headers)
                    return self._send(status, body)
                return self._send(404, {"error": "not_found"})

        return Handler
