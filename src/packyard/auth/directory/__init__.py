"""What the organisation's directory says of people (`[auth.ldap]`).

- `profile.py`: one person as the directory describes them (`DirectoryProfile`),
  and `DirectoryUnavailable`, raised when the directory could not be asked;
- `ldap.py`: `LdapDirectory`, which reads them from an LDAP server (ldap3).

Sign-in adds the groups and manager read here to the ID token's; the periodic
refresh reads every directory user again to follow group changes and departures.
"""
