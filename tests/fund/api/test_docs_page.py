"""The API reference inside the site: every operation of the schema, grouped in reading order,
public ones without a credential, each with who may call it."""

import re

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def test_the_reference_lists_every_operation_in_reading_order_with_who_may_call_it():
    page = Client().get("/api/docs/").content.decode()
    order = re.findall(r'<h2 id="tag-([a-z]+)"', page)
    assert order == ["public", "traders", "ingestion", "engine", "admin"]
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, methods in schema["paths"].items():
        for method in methods:
            shown = f'{method.upper()}</span>\n      <code class="path">{path}</code>'
            assert shown in page, (method, path)
    public = page.split('id="tag-public"')[1].split('id="tag-traders"')[0]
    admin = page.split('id="tag-admin"')[1].split('id="schemas"')[0]
    assert "Needs" not in public and public.count("<strong>Public:</strong>") > 10
    assert (
        "<strong>Public:</strong>" not in admin
        and "an API token (Authorization: Bearer …)" in admin
    )
    assert "csv_row" not in page and "* `" not in page  # no code docs, no raw enum markup
    assert 'id="schema-CycleOut"' in page and 'href="#schema-CycleOut"' in page


def test_the_schema_says_public_operations_need_no_credential():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for methods in schema["paths"].values():
        for operation in methods.values():
            if "public" in operation["tags"]:
                assert operation["security"] == []
            else:
                assert operation["security"], operation["operationId"]
