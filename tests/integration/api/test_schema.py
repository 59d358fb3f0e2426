"""The OpenAPI document and its docs page: complete, valid, and served with no CDN."""

import re

import yaml
from rest_framework.test import APIClient


def test_the_schema_is_public_and_describes_every_route(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    for path in ("/api/pipelines/{id}/versions/", "/api/endpoints/{name}/runs/",
                 "/api/runs/{id}/steps/{node}/logs/", "/api/schedules/{id}/",
                 "/api/artifacts/{digest}/", "/api/tokens/", "/api/models/{name}/versions/",
                 "/api/models/{name}/versions/{number}/score"):
        assert path in schema["paths"], path
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_operations_document_their_bodies_and_error_shapes(db):
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    save = schema["paths"]["/api/pipelines/{id}/"]["patch"]
    body = save["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert {"spec", "revision"} <= set(schema["components"]["schemas"][body]["properties"])
    for code in ("200", "400", "401", "403", "404", "409", "413", "503"):
        assert code in save["responses"], code
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"detail", "errors"}


def test_the_docs_page_loads_its_scripts_and_styles_locally(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in a for a in assets), assets
    assert not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    assert "cdn" not in html.lower()
