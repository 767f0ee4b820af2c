"""``bounces ingest --imap`` against a real IMAP server: a private Dovecot.

Each test starts its own Dovecot (``dovecot -F``) with a configuration written
in ``tmp_path``: one passwd-file user whose Maildir is under ``tmp_path``, an
IMAP listener (plain, and STARTTLS) and an IMAPS listener on free ports of
127.0.0.1, with a certificate signed by a throw-away CA. The client verifies it
as in production (``ssl.create_default_context()``); the tests that use TLS
trust the CA through the standard ``SSL_CERT_FILE`` variable, which OpenSSL
reads when it loads the default certificates.

Reports are put in the mailbox with IMAP APPEND, as a delivery agent would, and
what the command did is read back over IMAP (flags, what is left in the folder)
and in the database. .ci/run installs Dovecot (Debian's dovecot-imapd).
"""
from __future__ import annotations

import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mail.test_bounces import (
    VACATION,
    mixed_messages,
    postfix_dsn,
    run,
    sent,  # noqa: F401 — the fixture, used by name
    state,
)

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed (openssl comes with Dovecot)."""
    ca_key, ca, key, cert = (directory / name for name in ("ca.key", "ca.pem", "server.key", "server.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca,
                    "-subj", "/CN=Attest test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", key, "-out", cert,
                    "-subj", "/CN=127.0.0.1", "-CA", ca, "-CAkey", ca_key,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "keyUsage=critical,digitalSignature",
                    "-addext", "extendedKeyUsage=serverAuth"],
                   check=True, capture_output=True)
    return ca, cert, key


@dataclass
class Dovecot:
    port: int  # IMAP, plain or STARTTLS
    tls_port: int  # IMAP over TLS
    ca_file: Path  # the CA that signed the server's certificate
    log: Path

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver messages as an MDA would (imaplib turns their line ends into CRLF)."""
        imap = self.connect()
        try:
            for raw in messages:
                status, detail = imap.append(f'"{folder}"', None, None, raw)
                assert status == "OK", detail
        finally:
            imap.logout()

    def folder(self, folder: str = "INBOX") -> list[tuple[set[str], bytes]]:
        """(flags, Message-ID and Subject lines) of each message in the folder, in order."""
        imap = self.connect()
        try:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            assert status == "OK"
            _, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (X-ORIGINAL-TO TO SUBJECT)])")
            messages = []
            for item in data:
                if isinstance(item, tuple):
                    flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
                    messages.append((flags - {"\\Recent"}, item[1]))
            return messages
        finally:
            imap.logout()

    def create_folder(self, folder: str) -> None:
        imap = self.connect()
        try:
            assert imap.create(f'"{folder}"')[0] == "OK"
        finally:
            imap.logout()

    def mark_unseen(self, folder: str = "INBOX") -> None:
        imap = self.connect()
        try:
            imap.select(f'"{folder}"')
            assert imap.uid("STORE", "1:*", "-FLAGS.SILENT", r"(\Seen)")[0] == "OK"
        finally:
            imap.logout()


def _dovecot_config(root: Path, port: int, tls_port: int, cert: Path, key: Path) -> str:
    if os.geteuid() == 0:
        # Dovecot refuses to run its login processes, or to touch mail, as root: the
        # users its package creates do that. The mail process chroots into mail/
        # (the "/./" in home) before leaving root, so that the 0700 directories
        # pytest makes above tmp_path need not be open to the mail user.
        mail_user = pwd.getpwnam("dovecot")
        login_user, internal_user = "dovenull", "root"
        mail_root = root / "mail"
        mail_root.mkdir()
        (mail_root / USER).mkdir()
        for path in (mail_root, mail_root / USER):
            os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
        home = f"{mail_root}/./{USER}"
        chroot = f"valid_chroot_dirs = {mail_root}"
    else:  # an ordinary user: every process runs as that user
        mail_user = pwd.getpwuid(os.geteuid())
        login_user = internal_user = mail_user.pw_name
        home = str(root / "mail" / USER)
        chroot = "service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}"  # root only
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    for directory in ("run", "state"):
        (root / directory).mkdir()
    return f"""\
instance_name = attest-test-{port}
base_dir = {root / "run"}
state_dir = {root / "state"}
log_path = {root / "dovecot.log"}
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal_user}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name}
default_login_user = {login_user}
first_valid_uid = {mail_user.pw_uid}
first_valid_gid = {mail_user.pw_gid}
{chroot}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
# LOGIN before STARTTLS is allowed: the --plain tests use it (on localhost only)
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root / "passwd"}
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={home}
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


def _wait_for_greeting(process: subprocess.Popen, port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"dovecot exited ({process.returncode}):\n{process.stdout.read()}\n"
                        f"{log.read_text() if log.exists() else ''}")
        try:
            imaplib.IMAP4("127.0.0.1", port, timeout=2).shutdown()
            return
        except (OSError, imaplib.IMAP4.abort):
            if time.monotonic() > deadline:
                pytest.fail(f"dovecot does not answer on 127.0.0.1:{port}:\n"
                            f"{log.read_text() if log.exists() else ''}")
            time.sleep(0.05)


@pytest.fixture
def dovecot(tmp_path):
    """A private Dovecot, with one user (USER, PASSWORD) and an empty INBOX."""
    if not os.path.exists(DOVECOT):
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed; .ci/run installs it (dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd; .ci/run does it)")
    root = tmp_path / "dovecot"
    root.mkdir()
    ca, cert, key = _make_certificates(root)
    port, tls_port = _free_port(), _free_port()
    config = root / "dovecot.conf"
    config.write_text(_dovecot_config(root, port, tls_port, cert, key))
    log = root / "dovecot.log"
    # its own process group: should the master not stop, its children are killed with it
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_greeting(process, port, log)
        yield Dovecot(port, tls_port, ca, log)
    finally:
        process.terminate()  # the master stops its children, then exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
    # a misconfiguration shows only in the log (e.g. the mail process failing after login)
    problems = [line for line in log.read_text().splitlines()
                if re.search(r": (Error|Fatal|Panic): ", line)]
    assert not problems, "\n".join(problems)


@pytest.fixture
def login(dovecot, monkeypatch):
    """The command's IMAP options for the private Dovecot, plain on localhost."""
    monkeypatch.setenv("IMAP_PASSWORD", PASSWORD)
    return ["--imap", "127.0.0.1", "--port", str(dovecot.port), "--user", USER, "--plain"]


def summary(result) -> str:
    return result.output.splitlines()[-1]


def test_the_command_reads_an_imap_folder_and_flags_each_message_seen(app, sent, dovecot, login):  # noqa: F811
    _campaign_id, (ada, grace) = sent
    dovecot.append(*mixed_messages(ada, grace))

    result = run(app, *login)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # the keys are the messages' IMAP UIDs
    assert lines[0].startswith("1: bounce applied: outbox") and "5.1.1" in lines[0]
    assert lines[1].startswith("2: delayed") and "4.2.2" in lines[1]
    assert lines[2].startswith("3: ignored: the bounce address's signature is wrong")
    assert lines[3].startswith("4: unsubscribed")
    assert lines[4].startswith("5: ignored: neither")
    assert lines[5] == ("5 messages: bounces applied 1, unsubscribes 1, transient 1, ignored 2, "
                        "already recorded 0")
    ada_state = state(ada)
    assert ada_state["outbox"][0] == "bounced" and ada_state["outbox"][1] is not None
    assert ada_state["invitation"][0] == "bounced"
    assert ada_state["person"][1].startswith("hard bounce: 5.1.1")
    grace_state = state(grace)
    assert grace_state["person"][1] == "opted out" and grace_state["invitation"][1] is not None
    assert grace_state["outbox"][0] == "sent"  # the forged and the delayed reports changed nothing
    # Without --delete every message stays; each one read is flagged \Seen, those
    # not understood (the forged report, the out-of-office reply) too.
    assert [flags for flags, _ in dovecot.folder()] == [{"\\Seen"}] * 5

    # A second run finds no unseen message and changes nothing.
    before = (state(ada), state(grace))
    again = run(app, *login)
    assert again.exit_code == 0, again.output
    assert again.output == ("0 messages: bounces applied 0, unsubscribes 0, transient 0, ignored 0, "
                            "already recorded 0\n")
    assert (state(ada), state(grace)) == before

    # Messages someone marked unread again are read again, and change nothing either.
    dovecot.mark_unseen()
    third = run(app, *login)
    assert third.exit_code == 0, third.output
    assert [line.split(":")[0] for line in third.output.splitlines()[:-1]] == ["2", "3", "5"]
    assert summary(third) == ("5 messages: bounces applied 0, unsubscribes 0, transient 1, ignored 2, "
                              "already recorded 2")
    assert (state(ada), state(grace)) == before
    assert [flags for flags, _ in dovecot.folder()] == [{"\\Seen"}] * 5


def test_only_unseen_messages_are_read(app, sent, dovecot, login):  # noqa: F811
    _campaign_id, (ada, grace) = sent
    dovecot.append(postfix_dsn(ada))
    imap = dovecot.connect()  # a person already read the first one in their mail client
    imap.select('"INBOX"')
    imap.uid("STORE", "1", "+FLAGS.SILENT", r"(\Seen)")
    imap.logout()
    dovecot.append(postfix_dsn(grace))

    result = run(app, *login)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("2: bounce applied")
    assert summary(result).startswith("1 messages: bounces applied 1,")
    assert state(ada)["outbox"][0] == "sent" and state(grace)["outbox"][0] == "bounced"


def test_delete_expunges_only_the_messages_understood(app, sent, dovecot, login):  # noqa: F811
    _campaign_id, (ada, grace) = sent
    messages = mixed_messages(ada, grace)
    dovecot.append(*messages)

    result = run(app, *login, "--delete")

    assert result.exit_code == 0, result.output
    assert summary(result) == ("5 messages: bounces applied 1, unsubscribes 1, transient 1, ignored 2, "
                               "already recorded 0")
    assert state(ada)["outbox"][0] == "bounced" and state(grace)["person"][1] == "opted out"
    # The bounce, the delay report and the unsubscribe request are expunged; the
    # forged report and the out-of-office reply stay, read, for a person to look at.
    kept = dovecot.folder()
    assert [flags for flags, _ in kept] == [{"\\Seen"}, {"\\Seen"}]
    assert f"bounces+{grace.outbox_id}.0000000000000000@".encode() in kept[0][1]
    assert b"Out of office" in kept[1][1]

    again = run(app, *login, "--delete")
    assert again.exit_code == 0, again.output
    assert summary(again).startswith("0 messages:")
    assert len(dovecot.folder()) == 2


def test_another_folder_is_read_with_folder(app, sent, dovecot, login):  # noqa: F811
    _campaign_id, (ada, _grace) = sent
    dovecot.create_folder("Returned mail")
    dovecot.append(postfix_dsn(ada), folder="Returned mail")
    dovecot.append(VACATION)  # in INBOX: not looked at

    result = run(app, *login, "--folder", "Returned mail")

    assert result.exit_code == 0, result.output
    assert summary(result).startswith("1 messages: bounces applied 1,")
    assert state(ada)["outbox"][0] == "bounced"
    assert [flags for flags, _ in dovecot.folder()] == [set()]


def test_a_missing_folder_is_a_clean_error(app, sent, dovecot, login):  # noqa: F811
    result = run(app, *login, "--folder", "No such folder")

    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: IMAP 127.0.0.1: cannot open folder 'No such folder'")
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


def test_a_wrong_password_is_a_clean_error(app, sent, dovecot, login, monkeypatch):  # noqa: F811
    _campaign_id, (ada, _grace) = sent
    dovecot.append(postfix_dsn(ada))
    monkeypatch.setenv("IMAP_PASSWORD", "wrong")

    result = run(app, *login)

    assert result.exit_code == 1, result.output
    assert result.output == "Error: IMAP 127.0.0.1: [AUTHENTICATIONFAILED] Authentication failed.\n"
    assert isinstance(result.exception, SystemExit)
    assert state(ada)["outbox"][0] == "sent"


def test_starttls_verifies_the_server_certificate(app, sent, dovecot, login, monkeypatch):  # noqa: F811
    _campaign_id, (ada, _grace) = sent
    dovecot.append(postfix_dsn(ada))
    starttls = [arg for arg in login if arg != "--plain"] + ["--starttls"]

    # Signed by a CA the system does not trust: refused before the password is sent.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    refused = run(app, *starttls)
    assert refused.exit_code == 1, refused.output
    assert refused.output.startswith("Error: IMAP 127.0.0.1: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert "Traceback" not in refused.output
    assert state(ada)["outbox"][0] == "sent"

    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    result = run(app, *starttls)
    assert result.exit_code == 0, result.output
    assert summary(result).startswith("1 messages: bounces applied 1,")
    assert state(ada)["outbox"][0] == "bounced"


def test_imap_over_tls_is_the_default(app, sent, dovecot, monkeypatch):  # noqa: F811
    _campaign_id, (ada, _grace) = sent
    dovecot.append(postfix_dsn(ada))
    monkeypatch.setenv("IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))

    result = run(app, "--imap", "127.0.0.1", "--port", str(dovecot.tls_port), "--user", USER)

    assert result.exit_code == 0, result.output
    assert summary(result).startswith("1 messages: bounces applied 1,")
    assert state(ada)["outbox"][0] == "bounced"
    assert [flags for flags, _ in dovecot.folder()] == [{"\\Seen"}]
