"""Fixtures shared by the test files."""

import pytest
from cloudflare_standin import CloudflareStandIn


@pytest.fixture
def cf():
    """The Cloudflare stand-in (a test double) with one zone, example.com."""
    with CloudflareStandIn() as standin:
        standin.zone = standin.add_zone("example.com")
        yield standin
