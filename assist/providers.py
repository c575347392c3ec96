"""The one provider interface of AI assistance, and its two implementations.

- `OfflineProvider`: always there, deterministic, milliseconds. Its answers are the product's own
  (the sentence parser, the fact-based summary, the content-based subject lines).
- `OpenAICompatibleProvider`: any OpenAI-compatible chat-completions endpoint (OpenAI, Gemini's
  compatible endpoint, Ollama, vLLM, a LiteLLM proxy) over plain httpx. It asks for JSON constrained
  by a JSON schema (``response_format: json_schema``); an endpoint that refuses that parameter is
  asked again once with ``json_object`` and remembered. Either way the caller validates the answer.

Every method takes only what may leave the service: field names and operators, the tenant's tag and
campaign names, campaign content and aggregate figures (assist/services.py builds the requests);
never a customer's row. Errors are `ProviderError`; assist.services falls back to the offline answer.
"""

import json
import logging
import threading

import httpx

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider did not give a usable answer (down, slow, refused, or not valid JSON)."""


class OfflineProvider:
    source = "offline"


class OpenAICompatibleProvider:
    source = "provider"
    # Endpoints known to refuse `json_schema` (process-wide; no tenant data): asked with json_object.
    _schema_refused = set()
    _lock = threading.Lock()

    def __init__(self, *, base_url, api_key, model, timeout):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def complete_json(self, *, system, user, schema, name):
        """The model's JSON answer (a dict) to a system and a user message, constrained by `schema`."""
        use_schema = self.base_url not in self._schema_refused
        try:
            return self._request(system, user, schema, name, use_schema)
        except _SchemaRefused:
            with self._lock:
                self._schema_refused.add(self.base_url)
            return self._request(system, user, schema, name, False)

    def _request(self, system, user, schema, name, use_schema):
        if use_schema:
            response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        else:
            response_format = {"type": "json_object"}
            system = f"{system}\n\nAnswer with one JSON object that follows this JSON schema:\n{json.dumps(schema)}"
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": response_format,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            response = httpx.post(
                f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as error:
            raise ProviderError(f"{type(error).__name__}: {error}") from error
        if response.status_code == 400 and use_schema and "response_format" in response.text:
            raise _SchemaRefused
        if response.status_code != 200:
            raise ProviderError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
            answer = json.loads(_strip_fences(content))
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ProviderError(f"not a JSON answer: {error}") from error
        if not isinstance(answer, dict):
            raise ProviderError("the answer is not a JSON object")
        return answer


class _SchemaRefused(Exception):
    pass


def _strip_fences(content):
    """Some models wrap JSON in a Markdown code fence even when asked not to."""
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text
