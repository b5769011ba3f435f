"""Runs the test OpenID Connect provider: `python -m tests.oidc_provider.serve PORT`.

Creates the SQLite schema and an RSA signing key on first start (both kept in
the state directory, so a restart keeps the key and the sessions), then serves
with Django's threaded WSGI server on 127.0.0.1 only. `OidcProvider` starts it.
"""

import os
import sys


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from oidc_provider.models import RSAKey

    if not RSAKey.objects.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        RSAKey.objects.create(key=pem.decode("ascii"))
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, skip_checks=True)


if __name__ == "__main__":
    main()
