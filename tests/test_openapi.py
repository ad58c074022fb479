"""The committed OpenAPI document is the one the protos give today, and it describes exactly what the gateway
serves."""

from __future__ import annotations

import json

from argus.config import Settings
from argus.services.gateway.app import OPENAPI_DOCUMENT, GatewayApp
from argus.services.gateway.openapi import render


def test_the_openapi_document_is_current() -> None:
    assert OPENAPI_DOCUMENT.read_text() == render(), (
        "services/gateway/openapi.json is stale: run `make protos` (python -m argus.services.gateway.openapi)"
    )


def test_it_describes_every_rpc_the_gateway_serves_and_no_other() -> None:
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    assert set(document["paths"]) == set(GatewayApp(Settings()).endpoints)
    verify = document["components"]["schemas"]["argus.facedb.v1.VerifyRequest"]
    assert set(verify["properties"]) >= {"collection", "subjectId", "image"}  # proto3 JSON names
    image = document["components"]["schemas"]["argus.common.v1.Image"]["properties"]["data"]
    assert image["type"] == "string" and image["contentEncoding"] == "base64"
