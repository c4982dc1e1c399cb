"""Shared setup of the token-validating web tests: trusted keys on disk and the env that
points revoker at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.web.conftest import CHECK_KEY

GATEWAY = {"X-Revoker-Key": CHECK_KEY}


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture(scope="session")
def pem_dir(keyset: KeySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keyset.write_pems(tmp_path_factory.mktemp("trusted-keys"))


@pytest.fixture(scope="session")
def jwt_env(pem_dir: Path) -> dict[str, str]:
    """Asymmetric keys from PEM files, issuer and audience enforced, 1 h max lifetime."""
    return {"REVOKER_JWT_PUBLIC_KEYS": str(pem_dir), "REVOKER_JWT_ISSUER": ISSUER,
            "REVOKER_JWT_AUDIENCE": AUDIENCE, "REVOKER_MAX_TOKEN_LIFETIME": "3600",
            "REVOKER_LEEWAY": "30"}


def bearer(token: str) -> dict[str, str]:
    return {**GATEWAY, "Authorization": f"Bearer {token}"}
