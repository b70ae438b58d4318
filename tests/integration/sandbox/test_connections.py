"""The sandbox keeps HTTP connections open between calls, as AWS endpoints do, and a stopped
sandbox stops answering on them."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from ccstate.sandbox import Sandbox

CC_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "CloudApiService.ListResourceRequests",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/cloudcontrolapi/"
    "aws4_request, SignedHeaders=host, Signature=x",
}


def _connection(sandbox: Sandbox) -> http.client.HTTPConnection:
    url = urlsplit(sandbox.endpoint_url)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)


def test_several_calls_share_one_connection(sandbox: Sandbox) -> None:
    conn = _connection(sandbox)
    try:
        for _ in range(3):
            conn.request("POST", "/", body=b"{}", headers=CC_HEADERS)
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200
            assert response.getheader("Connection") != "close"
            assert "ResourceRequestStatusSummaries" in body
        first_socket = conn.sock
        conn.request("POST", "/", body=b"{}", headers=CC_HEADERS)
        conn.getresponse().read()
        assert conn.sock is first_socket
    finally:
        conn.close()


def test_a_bad_request_body_does_not_spoil_the_next_call(sandbox: Sandbox) -> None:
    conn = _connection(sandbox)
    try:
        conn.request("POST", "/", body=b"not json", headers=CC_HEADERS)
        refused = conn.getresponse()
        assert refused.status == 400
        assert json.loads(refused.read())["__type"] == "SerializationException"
        conn.request("POST", "/", body=b"{}", headers=CC_HEADERS)
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_a_stopped_sandbox_stops_answering_kept_connections() -> None:
    sandbox = Sandbox().start()
    cc = boto3.client(
        "cloudcontrol",
        endpoint_url=sandbox.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    cc.list_resource_requests()  # the client now holds an open connection
    sandbox.stop()
    with pytest.raises(EndpointConnectionError):
        cc.list_resource_requests()
