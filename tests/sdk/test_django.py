"""Django on a real threaded WSGI server: plain views behind the WSGI middleware, Django
REST framework with ``RevokerAuthentication``, and simplejwt with the drop-in token
class, against a real ``revoker serve`` on a real redis-server.

Django's settings are configured once per process, so this module owns one service and
one guard for all its tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from revoker.sdk import SyncRevokerClient
from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.redis_proc import RedisProcess
from tests.sdk.conftest import ADMIN, STALENESS_S, JwksHttp, service_env
from tests.sdk.servers import call, status_within, wsgi_server
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis
SECRET = "django-test-secret-key-that-is-long-enough-for-hs256"


def plain_me(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"sub": request.META["revoker.claims"]["sub"]})


def views() -> list[Any]:
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

    from revoker.sdk.django import RevokerAuthentication

    class DrfMe(APIView):
        authentication_classes = (RevokerAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({"sub": request.user.username, "jti": request.auth["jti"]})

    class SimpleJwtMe(APIView):
        authentication_classes = (JWTStatelessUserAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({"user_id": request.user.id})

    return [path("plain/me", plain_me), path("drf/me", DrfMe.as_view()),
            path("simplejwt/me", SimpleJwtMe.as_view())]


urlpatterns: list[Any] = []


@pytest.fixture(scope="module")
def django_service(redis_server: RedisProcess, jwks: JwksHttp) -> Iterator[ServeProcess]:
    prefix = f"dj{uuid.uuid4().hex[:10]}:"
    server = ServeProcess(service_env(redis_server.url, prefix, jwks.url)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(django_service: ServeProcess, jwks: JwksHttp) -> Iterator[str]:
    if not settings.configured:
        settings.configure(
            SECRET_KEY=SECRET, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["127.0.0.1"],
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                            "rest_framework"],
            DATABASES={}, USE_TZ=True,
            REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
            SIMPLE_JWT={"AUTH_TOKEN_CLASSES": ("revoker.sdk.simplejwt.RevokerAccessToken",),
                        "SIGNING_KEY": SECRET},
            # A key with the revoke scope, for simplejwt's blacklist(); a check key
            # is enough for everything else.
            REVOKER={"url": django_service.url, "key": ADMIN, "jwks_url": jwks.url,
                     "issuer": ISSUER, "audience": [AUDIENCE],
                     "max_staleness_s": STALENESS_S})
        django.setup()
    urlpatterns[:] = views()
    from django.core.wsgi import get_wsgi_application

    from revoker.sdk import django as sdk_django
    from revoker.sdk.wsgi import RevokerWSGI

    app = RevokerWSGI(get_wsgi_application(), sdk_django.guard(),
                      exclude=("/drf", "/simplejwt"))
    with wsgi_server(app) as url:
        yield url
    sdk_django.guard().close()


def revoke(service: ServeProcess, kind: str, value: str) -> None:
    with SyncRevokerClient(service.url, ADMIN) as rc:
        rc.revoke(kind, value)


@pytest.mark.parametrize("route", ["/plain/me", "/drf/me"])
def test_valid_then_revoked_by_jti(site: str, django_service: ServeProcess, keyset: KeySet,
                                   route: str) -> None:
    jti = f"j-{uuid.uuid4().hex}"
    token = keyset.token(jti=jti, sub="grace")
    status, _, body = call(site, route, token)
    assert status == 200 and json.loads(body)["sub"] == "grace"
    status, headers, _ = call(site, route, keyset.token(iss="https://evil.example"))
    assert status == 401
    assert headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    revoke(django_service, "jti", jti)
    assert status_within(site, route, token, 401, within_s=STALENESS_S)


def test_drf_without_a_token_is_a_401_challenge(site: str) -> None:
    status, headers, _ = call(site, "/drf/me")
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_simplejwt_drop_in_blacklist(site: str, django_service: ServeProcess) -> None:
    from revoker.sdk.simplejwt import RevokerAccessToken

    token = RevokerAccessToken()
    token["user_id"] = "42"
    other = RevokerAccessToken()
    other["user_id"] = "42"
    text, other_text = str(token), str(other)
    status, _, body = call(site, "/simplejwt/me", text)
    assert status == 200 and json.loads(body)["user_id"] == "42"
    RevokerAccessToken(text).blacklist()  # revoked in revoker, for every service
    assert status_within(site, "/simplejwt/me", text, 401, within_s=STALENESS_S)
    assert call(site, "/simplejwt/me", other_text)[0] == 200
    revoke(django_service, "jti", str(other["jti"]))
    assert status_within(site, "/simplejwt/me", other_text, 401, within_s=STALENESS_S)
