"""Rate limits: a token bucket per client address and one per API key, answering 429 problem+json
with Retry-After. Off in the local profile (the test suites, benchmarks, `make run`), on in the
production profile; here a second operator app on the package's database and chain, with the
limits on and tiny buckets, served over real HTTP. The buckets refill at one token per 1,000 s, so
nothing here depends on how fast the requests go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.common.guard import TokenBuckets
from services.operator.app import create_app
from tests.processes import free_port
from tests.services.conftest import ADMIN_KEY, Api, ServerThread

SLOW = 0.001  # tokens per second: no refill within a test


def _serve(api: Api, **limits: Any) -> Iterator[str]:
    settings = api.app.state.ctx.settings.model_copy(update={"rate_limit": True, **limits})
    app = create_app(settings, w3=api.w3, background=False)
    port = free_port()
    with ServerThread(app, port, settings):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def per_address(api: Api) -> Iterator[str]:
    yield from _serve(api, rate_per_address_per_s=SLOW, rate_burst_per_address=5, rate_burst_per_key=1000)


@pytest.fixture
def per_key(api: Api) -> Iterator[str]:
    yield from _serve(api, rate_burst_per_address=1000, rate_per_key_per_s=SLOW, rate_burst_per_key=3)


def _is_429(r: httpx.Response, who: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["type"] == "urn:xcpay:problem:rate-limited" and who in body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]


def test_a_client_address_beyond_its_burst_gets_429_with_retry_after(per_address: str) -> None:
    with httpx.Client(base_url=per_address, timeout=60) as client:
        answers = [client.get("/healthz").status_code for _ in range(5)]
        assert answers == [200] * 5
        _is_429(client.get("/healthz"), "client address")
        # with a key or without: the address's bucket is empty either way (no key needed to be limited)
        _is_429(client.get("/v1/api-keys", headers={"X-API-Key": ADMIN_KEY}), "client address")


def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_limit(per_address: str) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: each request naming another
    address had its own bucket. No proxy is trusted unless XCPAY_TRUSTED_PROXIES names it."""
    with httpx.Client(base_url=per_address, timeout=60) as client:
        answers = [
            client.get("/healthz", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(5)
        ]
        assert answers == [200] * 5
        _is_429(client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.99"}), "client address")


def test_a_key_beyond_its_burst_gets_429_and_another_key_is_still_served(per_key: str, api: Api) -> None:
    auditor = api.clients["auditor"].headers["X-API-Key"]
    with httpx.Client(base_url=per_key, timeout=60, headers={"X-API-Key": ADMIN_KEY}) as admin:
        assert [admin.get("/v1/api-keys").status_code for _ in range(3)] == [200] * 3
        _is_429(admin.get("/v1/api-keys"), "API key")
        wallet = "/v1/wallets/0x" + "00" * 19 + "01"
        assert admin.get(wallet, headers={"X-API-Key": auditor}).status_code == 404  # its own bucket
        assert admin.get("/healthz").status_code == 200  # no key, no key bucket


class TestTokenBuckets:
    def test_a_bucket_admits_its_burst_then_refills_at_its_rate(self) -> None:
        b = TokenBuckets(rate=2.0, burst=3)
        assert [b.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert b.take("a", now=0.0) == pytest.approx(0.5)  # one token in half a second
        assert b.take("a", now=0.5) == 0.0
        assert b.take("b", now=0.5) == 0.0  # another name, another bucket

    def test_the_bucket_table_is_bounded(self) -> None:
        b = TokenBuckets(rate=1.0, burst=1, max_names=10)
        for i in range(100):
            b.take(f"addr-{i}", now=0.0)
        assert len(b._buckets) == 10
