"""A throwaway OpenLDAP server for tests: Debian's real `slapd`, never a mock (DESIGN §5).

    slapd = start_slapd(tmp_path)      # ldap://127.0.0.1:PORT, dc=example,dc=org
    slapd.add_user("dana", "Dana Scully", "dana@example.org", manager_uid="bob")
    slapd.set_groups("dana", ["Accelerator Controls"])
    ...
    slapd.stop()

`start_slapd` writes a `slapd.conf` of its own in the given directory (schemas
core, cosine and inetorgperson from /etc/ldap/schema; one MDB database for
`dc=example,dc=org`, with a root DN and password) and runs `/usr/sbin/slapd -f`
in the foreground, on 127.0.0.1 only: `url` (ldap://, StartTLS offered) and
`ldaps_url` (ldaps://), two free ports, with a certificate for 127.0.0.1 signed
by a CA of its own (`ca_file`). Nothing of the package's configuration
(/etc/ldap/slapd.d, /var/lib/ldap) is read, and a system slapd the package may
have started is neither needed nor disturbed. It runs as whoever runs the
tests, root included, and starts in a fraction of a second.

It is seeded with `SEED_USERS` and `SEED_GROUPS` (below), written as the root
DN through LDAP with ldap3, as every later change is.

Outages: `stop`/`start` take the server away and bring it back on the same
ports and data; `pause`/`resume` freeze it (SIGSTOP/SIGCONT), so the kernel
still accepts connections but nothing answers them: a directory that hangs.

Needs the Debian package `slapd` (scripts/test.sh installs it).
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

SLAPD = Path("/usr/sbin/slapd")
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
BASE_DN = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "packyard-test-root"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
START_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 10
PORT_ATTEMPTS = 3

# uid -> (full name, e-mail, manager's uid)
SEED_USERS: dict[str, tuple[str, str, str | None]] = {
    "bob": ("Bob Boss", "bob@example.org", None),
    "alice": ("Alice Liddell", "alice@example.org", "bob"),
    "carol": ("Carol Danvers", "carol@example.org", "bob"),
}
# group name -> members' uids
SEED_GROUPS: dict[str, list[str]] = {
    "Accelerator Controls": ["alice", "carol"],
    "packyard-admins": ["bob"],
}

CONFIG = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath {modules}
moduleload back_mdb
TLSCACertificateFile {root}/ca.pem
TLSCertificateFile {root}/server.pem
TLSCertificateKeyFile {root}/server.key

database mdb
maxsize 67108864
suffix "{base_dn}"
rootdn "{root_dn}"
rootpw {root_password}
directory {root}/data
index objectClass eq
index uid,member eq
"""


class SlapdUnavailable(RuntimeError):
    """slapd is not installed, or did not start (its log is in the message)."""


class Slapd:
    """One running slapd and the people and groups in it. Build it with `start_slapd`."""

    base_dn = BASE_DN
    bind_dn = ROOT_DN
    bind_password = ROOT_PASSWORD

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_file = root / "ca.pem"
        self.log = root / "slapd.log"
        self.port = 0
        self.ldaps_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._user_dns: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def user_dn(self, uid: str) -> str:
        return self._user_dns.get(uid, f"uid={escape_rdn(uid)},{PEOPLE_DN}")

    def group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{GROUPS_DN}"

    def add_user(
        self,
        uid: str,
        name: str,
        mail: str,
        manager_uid: str | None = None,
        *,
        named_by_cn: bool = False,
    ) -> None:
        """An inetOrgPerson under ou=people, whose password is `<uid>-password`.

        `named_by_cn`: its DN is `cn=<name>,ou=people,...` (as in Active Directory,
        where names hold commas and parentheses), not `uid=<uid>,...`.
        """
        attributes: dict[str, str | list[str]] = {
            "objectClass": ["inetOrgPerson"],
            "uid": uid,
            "cn": name,
            "sn": name.split()[-1],
            "mail": mail,
            "userPassword": f"{uid}-password",
        }
        if manager_uid is not None:
            attributes["manager"] = self.user_dn(manager_uid)
        if named_by_cn:
            self._user_dns[uid] = f"cn={escape_rdn(name)},{PEOPLE_DN}"
        with self._connection() as connection:
            _add(connection, self.user_dn(uid), attributes)

    def remove_user(self, uid: str) -> None:
        """Delete the person, and their group memberships with them (as a directory
        with referential integrity would)."""
        self.set_groups(uid, [])
        with self._connection() as connection:
            _delete(connection, self.user_dn(uid))
        self._user_dns.pop(uid, None)

    def set_groups(self, uid: str, groups: list[str]) -> None:
        """Make the person a member of exactly `groups` (groupOfNames under ou=groups):
        a group is created for its first member and deleted with its last."""
        member = self.user_dn(uid)
        with self._connection() as connection:
            connection.search(
                GROUPS_DN,
                f"(member={escape_filter_chars(member)})",
                attributes=["cn", "member"],
            )
            current = {entry.cn.value: len(entry.member.values) for entry in connection.entries}
            for name, size in current.items():
                if name in groups:
                    continue
                if size == 1:  # groupOfNames must have a member
                    _delete(connection, self.group_dn(name))
                else:
                    _modify(connection, self.group_dn(name), ldap3.MODIFY_DELETE, member)
            for name in groups:
                if name in current:
                    continue
                if connection.search(self.group_dn(name), "(objectClass=*)", ldap3.BASE):
                    _modify(connection, self.group_dn(name), ldap3.MODIFY_ADD, member)
                else:
                    group = {"objectClass": ["groupOfNames"], "cn": name, "member": [member]}
                    _add(connection, self.group_dn(name), group)

    def start(self) -> None:
        """Start slapd (again: same ports and data); return once it accepts connections.

        Raises:
            SlapdUnavailable: it exited or did not listen within START_TIMEOUT_SECONDS.
        """
        command = [str(SLAPD), "-f", str(self.root / "slapd.conf")]
        command += ["-h", f"{self.url}/ {self.ldaps_url}/"]
        # -d: stay in the foreground (our child, to signal); 32768 ("none"): log only
        # what is always logged, such as a port in use.
        command += ["-d", "32768"]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches pytest only; its unwinding stops us
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SlapdUnavailable(f"slapd exited ({self._process.returncode}):\n{self._log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.02)
            else:
                return
        self.stop()
        raise SlapdUnavailable(
            f"slapd did not listen within {START_TIMEOUT_SECONDS} s:\n{self._log()}"
        )

    def stop(self) -> None:
        """Stop slapd (a paused one too) and wait for it; safe to call more than once."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze slapd: connections are still accepted (by the kernel), never answered."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def _connection(self) -> ldap3.Connection:
        server = ldap3.Server(self.url, connect_timeout=5, get_info=ldap3.NONE)
        return ldap3.Connection(
            server, self.bind_dn, self.bind_password, auto_bind=True, receive_timeout=5
        )

    def _log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"


def start_slapd(root: Path) -> Slapd:
    """A running slapd with its configuration and data in `root` (an empty directory),
    seeded with SEED_USERS and SEED_GROUPS. Stopped at interpreter exit at the latest.

    Raises:
        SlapdUnavailable: slapd is not installed, or did not start.
    """
    if not SLAPD.is_file():
        raise SlapdUnavailable(
            f"the LDAP tests need {SLAPD}: install Debian's package "
            "(`apt-get install slapd`, which scripts/test.sh does)"
        )
    (root / "data").mkdir()
    _write_certificates(root)
    config = CONFIG.format(
        schemas=SCHEMAS,
        modules=MODULES,
        root=root,
        base_dn=BASE_DN,
        root_dn=ROOT_DN,
        root_password=ROOT_PASSWORD,
    )
    (root / "slapd.conf").write_text(config)
    slapd = Slapd(root)
    # A free port can be taken again before slapd binds it: try others.
    for attempt in range(1, PORT_ATTEMPTS + 1):
        slapd.port, slapd.ldaps_port = _free_port(), _free_port()
        try:
            slapd.start()
        except SlapdUnavailable:
            if attempt == PORT_ATTEMPTS or "already in use" not in slapd._log():
                raise
        else:
            break
    atexit.register(slapd.stop)
    _seed(slapd)
    return slapd


def _seed(slapd: Slapd) -> None:
    entries = {
        BASE_DN: {"objectClass": ["dcObject", "organization"], "dc": "example", "o": "Example"},
        PEOPLE_DN: {"objectClass": ["organizationalUnit"], "ou": "people"},
        GROUPS_DN: {"objectClass": ["organizationalUnit"], "ou": "groups"},
    }
    with slapd._connection() as connection:
        for dn, attributes in entries.items():
            _add(connection, dn, attributes)
    for uid, (name, mail, manager) in SEED_USERS.items():
        slapd.add_user(uid, name, mail, manager)
    for uid in SEED_USERS:
        slapd.set_groups(uid, [name for name, members in SEED_GROUPS.items() if uid in members])


def _write_certificates(root: Path) -> None:
    """`ca.pem`, and `server.pem`/`server.key` for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "packyard test CA")])
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    # The IP address for Python's ssl.match_hostname; the same as a DNS name for
    # ldap3's own copy of it (Python 3.12+), which reads no IP addresses.
    alternatives = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("127.0.0.1")]
    server = (
        _certificate(name, ca_name, key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


# ldap3's stubs leave its writes untyped.
def _add(connection: ldap3.Connection, dn: str, attributes: Mapping[str, object]) -> None:
    _check(connection, connection.add(dn, attributes=attributes))  # type: ignore[no-untyped-call]


def _delete(connection: ldap3.Connection, dn: str) -> None:
    _check(connection, connection.delete(dn))  # type: ignore[no-untyped-call]


def _modify(connection: ldap3.Connection, dn: str, change: str, member: str) -> None:
    changes = {"member": [(change, [member])]}
    _check(connection, connection.modify(dn, changes))  # type: ignore[no-untyped-call]


def _check(connection: ldap3.Connection, succeeded: object) -> None:
    if not succeeded:
        raise RuntimeError(f"slapd refused a test change: {connection.result}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
