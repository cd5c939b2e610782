"""The API's reference inside the site: every operation of the OpenAPI schema (the same one
/api/schema/ serves), grouped by tag in reading order, rendered as a page of the portal with
its header, dark mode and phone layout. Tools read the schema itself."""

import re
from functools import lru_cache

from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")
AUTH = {
    "bearerAuth": "an API token (Authorization: Bearer …)",
    "cookieAuth": "a logged-in browser session",
}


def clean(text: str) -> str:
    """A schema description as plain words: drf-spectacular's enum lists ("* `open` - Open")
    read as "open: Open"."""
    return re.sub(r"^\* `([^`]*)` - ", r"\1: ", text or "", flags=re.MULTILINE)


def _ref_name(schema: dict) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def type_text(schema: dict) -> dict:
    """A schema's type as a reader wants it: {"text", "ref"} where ref names a schema listed
    further down the page."""
    if not schema:
        return {"text": "any", "ref": None}
    name = _ref_name(schema)
    if name:
        return {"text": name, "ref": name}
    for combiner in ("allOf", "oneOf", "anyOf"):
        if combiner in schema:
            parts = [type_text(s) for s in schema[combiner]]
            refs = [p["ref"] for p in parts if p["ref"]]
            return {"text": " or ".join(p["text"] for p in parts), "ref": refs[0] if refs else None}
    kind = schema.get("type", "object")
    if kind == "array":
        item = type_text(schema.get("items", {}))
        return {"text": f"list of {item['text']}", "ref": item["ref"]}
    text = kind
    if schema.get("format"):
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + ", ".join(str(v) for v in schema["enum"] if v is not None)
    if schema.get("nullable"):
        text += ", or null"
    return {"text": text, "ref": None}


LIMITS = (
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "from {}"),
    ("maximum", "up to {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "pattern {}"),
)


def _limits(schema: dict) -> str:
    parts = []
    for key, label in LIMITS:
        if key in schema:
            parts.append(label.format(schema[key]))
    return "; ".join(parts)


def _fields(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": type_text(prop),
            "required": name in required,
            "read_only": prop.get("readOnly", False),
            "description": clean(prop.get("description", "")),
            "limits": _limits(prop),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _body(content: dict) -> dict | None:
    for media in ("application/json", "text/csv", "application/jsonl"):
        if media in content:
            return {"media": media, "type": type_text(content[media].get("schema", {}))}
    if content:
        media = next(iter(content))
        return {"media": media, "type": type_text(content[media].get("schema", {}))}
    return None


def _operation(path: str, method: str, op: dict) -> dict:
    security = op.get("security")
    public = security == []
    schemes = sorted({name for requirement in security or [] for name in requirement})
    return {
        "id": op.get("operationId", f"{method}-{path}"),
        "method": method.upper(),
        "path": path,
        "summary": op.get("summary", ""),
        "description": clean(op.get("description", "")),
        "public": public,
        "auth": [AUTH.get(name, name) for name in schemes],
        "parameters": [
            {
                "name": p["name"],
                "in": p["in"],
                "required": p.get("required", False),
                "type": type_text(p.get("schema", {})),
                "description": clean(p.get("description", "")),
            }
            for p in op.get("parameters", [])
        ],
        "request": _body(op.get("requestBody", {}).get("content", {})),
        "responses": [
            {
                "code": code,
                "description": r.get("description", ""),
                "body": _body(r.get("content", {})),
            }
            for code, r in sorted(op.get("responses", {}).items())
        ],  # fmt: skip
    }


@lru_cache(maxsize=1)
def reference() -> dict:
    """The schema as the page shows it (built once per process: the schema is the code's)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    sections = []
    for tag in schema.get("tags", []):
        operations = [
            _operation(path, method, op)
            for path, methods in schema["paths"].items()
            for method, op in methods.items()
            if method in METHODS and tag["name"] in op.get("tags", [])
        ]
        if operations:
            sections.append({**tag, "operations": operations})
    components = schema.get("components", {}).get("schemas", {})
    schemas = [
        {
            "name": name,
            "description": clean(body.get("description", "")),
            "fields": _fields(body),
            "type": type_text({k: v for k, v in body.items() if k != "description"})
            if "properties" not in body
            else None,
        }
        for name, body in sorted(components.items())
    ]
    return {"info": schema["info"], "sections": sections, "schemas": schemas}


def api_docs(request):
    """The API reference page (public)."""
    site = f"{request.scheme}://{request.get_host()}"
    ref = reference()
    sections = [
        {**section, "operations": [{**op, "curl": curl(op, site)} for op in section["operations"]]}
        for section in ref["sections"]
    ]
    return render(request, "api/docs.html", {**ref, "sections": sections, "site": site})


def curl(op: dict, site: str) -> str:
    """A command line that calls the operation (path parameters left in braces)."""
    parts = ["curl"]
    if op["method"] != "GET":
        parts.append(f"-X {op['method']}")
    if not op["public"]:
        parts.append("-H 'Authorization: Bearer YOUR_TOKEN'")
    if op["request"]:
        parts.append(f"-H 'Content-Type: {op['request']['media']}' -d @body.json")
    parts.append(f"'{site}{op['path']}'")
    return " ".join(parts)
