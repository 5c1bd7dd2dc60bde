"""The auth headers our raw requests carry: the client's own, asked again once a second."""

from __future__ import annotations

import time

from kubernetes import client

from cluster_scheduler.api.rest import AuthHeaders


def test_auth_headers_follow_a_rotated_token_within_their_ttl():
    cfg = client.Configuration()
    cfg.api_key = {"authorization": "old"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    auth = AuthHeaders(client.ApiClient(cfg), ttl_s=0.2)
    assert auth() == {"authorization": "Bearer old"}
    cfg.api_key = {"authorization": "new"}  # as the refresh hook does when the token file changes
    assert auth() == {"authorization": "Bearer old"}  # within the ttl: not asked again
    time.sleep(0.25)
    assert auth() == {"authorization": "Bearer new"}
