"""Channels: SMTP URL forms, connection reuse, the .eml outbox, DKIM signatures."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult
from sqlalchemy import Engine

from cwn.archive.events import EventArchive
from cwn.config import Settings
from cwn.deliver.dkim import DkimSigner
from cwn.deliver.filebox import FileChannel
from cwn.deliver.outbox import PermanentFailure, TemporaryFailure
from cwn.deliver.smtp import SmtpChannel, SmtpTarget
from cwn.notify import Notifier, NotifyConfig
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    Clock,
    SmtpServer,
    add_org,
    add_report,
    create_notify_tables,
    free_port,
    smtp_server,
)

MSG = b"From: a@cert.test\r\nTo: b@acme.nl\r\nSubject: t\r\nMessage-ID: <1@cert.test>\r\n\r\nhi\r\n"


def test_smtp_urls() -> None:
    t = SmtpTarget.parse("smtp://127.0.0.1:2525")
    assert (t.host, t.port, t.tls, t.starttls, t.user) == ("127.0.0.1", 2525, False, False, None)
    t = SmtpTarget.parse("smtps://user%40x:p%3Ass@mail.example.nl")
    assert (t.port, t.tls, t.user, t.password) == (465, True, "user@x", "p:ss")
    t = SmtpTarget.parse("smtp://mail.example.nl:587?starttls=1")
    assert (t.port, t.starttls) == (587, True)
    with pytest.raises(ValueError):
        SmtpTarget.parse("http://x")


def test_one_connection_carries_many_messages_and_failures_are_classified(
        smtp_server: SmtpServer) -> None:  # noqa: F811
    smtp_server.recorder.refuse["dead@acme.nl"] = "550 5.1.1 unknown"
    smtp_server.recorder.refuse["busy@acme.nl"] = "452 4.2.2 mailbox full"
    ch = SmtpChannel(smtp_server.url)
    for i in range(5):
        ch.send(sender="bounces+x@cert.test", recipient=f"r{i}@acme.nl", data=MSG,
                message_id="<1@cert.test>")
    conn = ch._conn
    with pytest.raises(PermanentFailure):
        ch.send(sender="s@cert.test", recipient="dead@acme.nl", data=MSG, message_id="<2@x>")
    with pytest.raises(TemporaryFailure):
        ch.send(sender="s@cert.test", recipient="busy@acme.nl", data=MSG, message_id="<3@x>")
    ch.send(sender="s@cert.test", recipient="ok@acme.nl", data=MSG, message_id="<4@x>")
    assert ch._conn is conn  # still the same connection
    ch.close()
    assert len(smtp_server.messages) == 6
    assert smtp_server.messages[0].mail_from == "bounces+x@cert.test"


def test_nobody_listening_is_a_temporary_failure() -> None:
    ch = SmtpChannel(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    with pytest.raises(TemporaryFailure):
        ch.send(sender="s@x", recipient="r@x", data=MSG, message_id="<1@x>")


def test_without_smtp_url_messages_land_in_the_outbox_folder(
        engine: Engine, settings: Settings) -> None:
    create_notify_tables(engine)
    archive = EventArchive(settings.events_dir)
    add_org(engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    add_report(engine, archive, [{"source.ip": "192.0.2.1", "organization": "acme"}])
    notifier = Notifier(engine, archive, settings.model_copy(update={"smtp_url": None}),
                        clock=Clock(datetime(2026, 1, 10, tzinfo=UTC)),
                        config=NotifyConfig(mail_domain="cert.test"))
    report = notifier.run()
    assert report.delivery is not None and report.delivery.sent == 1
    files = list(settings.outbox_dir.glob("*.eml"))
    assert len(files) == 1
    data = files[0].read_bytes()
    assert b"X-Envelope-To: <cert@acme.nl>" in data and b"Auto-Submitted: auto-generated" in data
    # Writing the same message again replaces the file (a retry after a crash).
    FileChannel(settings.outbox_dir).send(sender="s", recipient="cert@acme.nl", data=b"x",
                                          message_id=files[0].stem)
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a key")
def test_dkim_signature_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    monkeypatch.setenv("CWN_DKIM_KEY_FILE", str(key))
    monkeypatch.setenv("CWN_DKIM_SELECTOR", "cwn1")
    monkeypatch.setenv("CWN_DKIM_DOMAIN", "cert.test")
    signer = DkimSigner.from_env()
    assert signer is not None
    signed = signer.sign(MSG)
    assert re.match(rb"DKIM-Signature: .*d=cert.test", signed)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"cwn1._domainkey.cert.test."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"hi", b"ho"), dnsfunc=dns)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def _auth(server: object, session: object, envelope: object, mechanism: str,
          auth_data: object) -> AuthResult:
    ok = getattr(auth_data, "login", b"") == b"cwn" and \
        getattr(auth_data, "password", b"") == b"s3cret:pw"
    return AuthResult(success=ok)


def test_starttls_with_login_and_implicit_tls(tls_context: ssl.SSLContext) -> None:
    from notify_support import Recorder, start_controller

    rec = Recorder()
    ctl, port = start_controller(rec, tls_context=tls_context, require_starttls=True,
                                 authenticator=_auth, auth_require_tls=True)
    try:
        ch = SmtpChannel(
            f"smtp://cwn:s3cret%3Apw@127.0.0.1:{port}?starttls=1&verify=0&timeout=5")
        ch.send(sender="s@cert.test", recipient="r@acme.nl", data=MSG, message_id="<1@x>")
        ch.close()
        bad = SmtpChannel(f"smtp://cwn:wrong@127.0.0.1:{port}?starttls=1&verify=0&timeout=2")
        with pytest.raises((PermanentFailure, TemporaryFailure)):
            bad.send(sender="s@cert.test", recipient="r@acme.nl", data=MSG, message_id="<2@x>")
    finally:
        ctl.stop()
    assert len(rec.messages) == 1

    rec2 = Recorder()
    ctl2, port2 = start_controller(rec2, ssl_context=tls_context)
    try:
        ch = SmtpChannel(f"smtps://127.0.0.1:{port2}?verify=0&timeout=5")
        ch.send(sender="s@cert.test", recipient="r@acme.nl", data=MSG, message_id="<3@x>")
        ch.close()
    finally:
        ctl2.stop()
    assert len(rec2.messages) == 1
