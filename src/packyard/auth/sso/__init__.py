"""People signing in with the organisation's OpenID Connect providers (`[[auth.sso]]`).

- `attempt.py`: one sign-in under way (state, nonce, PKCE verifier), kept in
  a signed cookie between the redirect to the provider and its answer;
- `provider.py`: discovery, the authorization URL, the code exchange, the ID
  token's checks and the userinfo claims;
- `person.py`: the verified claims as a person packyard knows (name, e-mail,
  groups, manager).

The accounts made from them are `publish/directory_accounts.py`'s; the pages
are `routes/ui/admin/sso.py`.
"""
