"""The ranking service's HTTP edge (an ASGI middleware around BentoML's app): a bounded request
body, error bodies in the shape its OpenAPI document declares, and a document that says what the
service does.

- A body over MAX_BODY_BYTES (by its Content-Length, or counted as it streams in) gets a 413
  naming the limit, before the server parses it.
- A body of any other type than JSON (a form, multipart, text) gets a 415 naming its type, before
  BentoML would try to parse it (a multipart body raised inside BentoML: a 500; text/plain was
  taken as JSON).
- BentoML answers a refused body with `detail` as a list of pydantic errors (or the whole body as
  a list); its published schema says {"error": string, "detail": string}. Every 4xx/5xx JSON body
  leaves here in that shape: the message in `error`, each refused field as "loc: reason" joined
  into `detail`, so a client (or a fuzzer reading the spec) gets what the document promises.
- The document BentoML generates (/docs.json) leaves every request body optional, though each
  endpoint refuses a missing one, and does not list the 413, 415 and 503: all are added to each operation.
"""

from __future__ import annotations

import json

from grec.serving.limits import MAX_BODY_BYTES

# What a POST body may be declared as: JSON, or nothing said (curl --data-binary, most clients' default
# for a JSON body is to say so).
JSON_TYPES = (b"application/json", b"")
STORE_ROUTES = ("/rank",)  # the endpoints that read the online store per request


def error_body(status: int, body: bytes) -> bytes:
    """BentoML's error body rewritten as {"error": str, "detail": str}."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {"error": body.decode(errors="replace")}
    if isinstance(data, list) and len(data) == 1:  # BentoML sends ({"error": ...},) for a 4xx it raises
        data = data[0]
    if not isinstance(data, dict):
        data = {"error": json.dumps(data)}
    detail = data.get("detail", "")
    if isinstance(detail, list):  # pydantic's errors: where and why, one per refused field
        detail = "; ".join(_field_error(e) for e in detail)
    elif not isinstance(detail, str):
        detail = json.dumps(detail)
    return json.dumps({"error": str(data.get("error") or f"HTTP {status}"), "detail": detail}).encode()


def documented(spec: bytes) -> bytes:
    """/docs.json with each request body that has required fields required, the 413 and 415
    declared on every operation that takes a body, and the 503 on those that read the online store."""
    data = json.loads(spec)
    for route, path in data.get("paths", {}).items():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody")
            if body is None:
                continue
            if any(media.get("schema", {}).get("required") for media in body.get("content", {}).values()):
                body["required"] = True
            invalid = operation.get("responses", {}).get("400")
            if invalid is not None:
                operation["responses"]["413"] = {**invalid, "description": "Request body too large"}
                operation["responses"]["415"] = {**invalid, "description": "Request body not JSON (Content-Type)"}
                if route in STORE_ROUTES:
                    operation["responses"]["503"] = {**invalid, "description": "The online store does not answer"}
    return json.dumps(data).encode()


def _field_error(error) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", ""))


class RequestLimits:
    """The ASGI middleware: bounds the body (413) and shapes error bodies and the document as above.
    Error responses and /docs.json are held until complete, then rewritten with their length."""

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode(errors="replace").strip()
        if declared and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return await self._too_large(send, declared)
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") == "POST" and media not in JSON_TYPES:
            return await self._refuse(send, 415, "unsupported media type",
                                      f"Content-Type {media.decode(errors='replace')!r}: this service takes application/json")
        state = {"received": 0, "too_large": False, "start": None, "chunks": []}
        is_document = scope.get("path") == "/docs.json"

        async def bounded_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    state["too_large"] = True
                    raise ValueError(f"request body over {self.max_body_bytes} bytes")
            return message

        async def shaped_send(message):
            if message["type"] == "http.response.start":
                if state["too_large"] or message["status"] >= 400 or is_document:
                    state["start"] = message  # held until the body is complete
                    return
            elif message["type"] == "http.response.body" and state["start"] is not None:
                state["chunks"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                if state["too_large"]:
                    return await self._too_large(send, f"more than {self.max_body_bytes}")
                start, body = state["start"], b"".join(state["chunks"])
                content_type = dict(start.get("headers") or []).get(b"content-type", b"")
                shaped = start["status"] < 400 or content_type.startswith(b"application/json") or not body.strip()
                if shaped:  # the document, or a JSON (or empty) error body; anything else goes as it came
                    body = documented(body) if start["status"] < 400 else error_body(start["status"], body)
                    start = {**start, "headers": [(k, v) for k, v in start.get("headers") or []
                                                  if k not in (b"content-length", b"content-type")]
                             + [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
                await send(start)
                return await send({"type": "http.response.body", "body": body})
            await send(message)

        await self.app(scope, bounded_receive, shaped_send)

    async def _too_large(self, send, size: str) -> None:
        await self._refuse(send, 413, "request body too large",
                           f"{size} bytes; at most {self.max_body_bytes} (GREC_SERVE_MAX_BODY_BYTES)")

    @staticmethod
    async def _refuse(send, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
