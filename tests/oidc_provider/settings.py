"""Django settings of the test OpenID Connect provider (`serve.py` runs it).

Everything that varies per run comes from the environment set by `OidcProvider`:
the state directory (SQLite database, directory file), the site URL (so the
issuer is the same whatever Host header a client sends) and whether the ID
token carries the scopes' claims as well as the userinfo endpoint.
"""

import os
from pathlib import Path

STATE_DIR = Path(os.environ["OIDC_TEST_STATE_DIR"])
# The directory the fixture rewrites: users with their groups and manager, clients.
DIRECTORY_FILE = STATE_DIR / "directory.json"

SECRET_KEY = os.environ["OIDC_TEST_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# The issuer is SITE_URL + "/openid" (urls.py).
SITE_URL = os.environ["OIDC_TEST_SITE_URL"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oidc_provider",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After the session's user is known, before any view reads users or clients.
    "tests.oidc_provider.directory.DirectorySyncMiddleware",
]
ROOT_URLCONF = "tests.oidc_provider.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": STATE_DIR / "provider.sqlite3",
        # runserver answers requests in threads: writers wait for each other.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# A fast hash: the directory's passwords are test data, and syncing them must be quick.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/accounts/login/"
# Browsers share cookies between ports of 127.0.0.1: names of the provider's own
# keep them apart from the application's under test.
SESSION_COOKIE_NAME = "oidc_test_provider_session"
CSRF_COOKIE_NAME = "oidc_test_provider_csrftoken"

OIDC_USERINFO = "tests.oidc_provider.directory.userinfo"
OIDC_EXTRA_SCOPE_CLAIMS = "tests.oidc_provider.directory.DirectoryScopeClaims"
OIDC_IDTOKEN_SUB_GENERATOR = "tests.oidc_provider.directory.subject"
OIDC_IDTOKEN_INCLUDE_CLAIMS = os.environ.get("OIDC_TEST_CLAIMS_IN_ID_TOKEN", "1") == "1"
OIDC_TEMPLATES = {"authorize": "oidc_test/consent.html", "error": "oidc_test/error.html"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Why a flow was refused (bad redirect URI, code, verifier) is logged at DEBUG.
        "oidc_provider": {"handlers": ["console"], "level": "DEBUG"},
        "tests.oidc_provider": {"handlers": ["console"], "level": "DEBUG"},
        "django.request": {"handlers": ["console"], "level": "WARNING"},
    },
}
