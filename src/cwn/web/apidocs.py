"""`/api/docs`: the API reference rendered on the server from the OpenAPI document.

Swagger UI would load its scripts from a CDN, which an air-gapped desk cannot reach and
our Content-Security-Policy forbids; this page needs nothing but the spec.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from cwn.web.deps import language

_METHODS = ("get", "post", "put", "patch", "delete")


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items'))}"
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    return str(schema.get("type", ""))


def _response_schema(response: dict[str, Any]) -> str:
    content: dict[str, Any] = response.get("content") or {}
    for media in content.values():
        return _schema_name(media.get("schema"))
    return ""


def operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {})
            ops.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""), "tag": (op.get("tags") or [""])[0],
                "params": [{"name": p["name"], "in": p["in"], "required": p.get("required"),
                            "type": _schema_name(p.get("schema")),
                            "description": p.get("description", "")}
                           for p in op.get("parameters", [])],
                "body": {ct: _schema_name(v.get("schema")) for ct, v in body.items()},
                "responses": {code: (r.get("description", ""), _response_schema(r))
                              for code, r in op.get("responses", {}).items()},
            })
    return ops


def docs_page(request: Request, spec: dict[str, Any]) -> HTMLResponse:
    from cwn.web.render import page

    schemas = spec.get("components", {}).get("schemas", {})
    return page(request, "api_docs.html", None, lang=language(request), spec=spec,
                ops=operations(spec), schemas=schemas, schema_name=_schema_name)
