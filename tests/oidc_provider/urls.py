"""URLs of the test provider: Django's login page, and django-oidc-provider under
/openid (the issuer), whose discovery document is extended (`Discovery`)."""

from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpRequest
from django.urls import include, path, re_path
from oidc_provider.views import ProviderInfoView


class Discovery(ProviderInfoView):  # type: ignore[misc]
    """The library's discovery document, plus what it leaves out although it
    supports it: PKCE's methods (its token endpoint checks S256 and plain
    verifiers), the grant types, scopes and claims."""

    def _build_response_dict(self, request: HttpRequest) -> dict[str, Any]:
        document: dict[str, Any] = super()._build_response_dict(request)
        document["code_challenge_methods_supported"] = ["S256", "plain"]
        document["grant_types_supported"] = ["authorization_code", "refresh_token"]
        document["scopes_supported"] = ["openid", "profile", "email", "groups"]
        document["claims_supported"] = [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "name",
            "nickname",
            "preferred_username",
            "manager",
            "email",
            "email_verified",
            "groups",
        ]
        return document


urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    re_path(r"^openid/\.well-known/openid-configuration/?$", Discovery.as_view()),
    path("openid/", include("oidc_provider.urls", namespace="oidc_provider")),
]
