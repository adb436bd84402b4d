"""Small public-data files for unsolicited-notification tests: an RPSL dump in RIPE's
split-file style (with dummified personal data, as the real dumps have), a pyasn file and
an operator CSIRT list. The networks are documentation ranges."""

from __future__ import annotations

from pathlib import Path

RPSL = """\
# RIPE NCC database dump (TEST), dummified
% This file is a test fixture

inetnum:        198.51.100.0 - 198.51.100.255
netname:        EXAMPLE-ISP-NET
country:        NL
org:            ORG-EI1-TEST
status:         ALLOCATED PA
mnt-by:         EI-MNT
source:         TEST

inetnum:        198.51.100.64 - 198.51.100.71
netname:        BAKKERIJ-NET
descr:          Bakkerij Jansen
country:        NL
status:         ASSIGNED PA
source:         TEST

organisation:   ORG-EI1-TEST
org-name:       Example ISP B.V.
org-type:       LIR
abuse-c:        AR1-TEST
e-mail:         ***@isp.example.nl
source:         TEST

role:           Abuse Role
nic-hdl:        AR1-TEST
abuse-mailbox:  abuse@isp.example.nl
address:        ***
phone:          +31 20 ... ....
source:         TEST

inetnum:        203.0.113.0 - 203.0.113.255
netname:        DE-NET
country:        DE
org:            ORG-DE1-TEST
source:         TEST

organisation:   ORG-DE1-TEST
org-name:       Beispiel GmbH
abuse-c:        AR2-TEST
source:         TEST

role:           Abuse DE
nic-hdl:        AR2-TEST
abuse-mailbox:  abuse@beispiel.example.de
source:         TEST

aut-num:        AS64501
as-name:        EXAMPLE-ISP
org:            ORG-EI1-TEST
source:         TEST
"""

IPASN = """\
; IP-ASN32-DAT file
; test fixture
192.0.2.0/24\t64501
198.51.100.0/24\t64501
"""

CSIRTS = "country,name,email\nDE,CERT-Bund,certbund@bsi.example.de\n"


def write_public_data(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ripe": folder / "ripe.db.test", "ipasn": folder / "ipasn.dat",
             "csirts": folder / "csirts.csv"}
    paths["ripe"].write_text(RPSL, encoding="utf-8")
    paths["ipasn"].write_text(IPASN, encoding="utf-8")
    paths["csirts"].write_text(CSIRTS, encoding="utf-8")
    return paths


def scan_report(path: Path, ips: list[str], date: str = "2026-11-20") -> Path:
    """A Shadowserver scan_rdp report with the given source addresses."""
    lines = ['"timestamp","ip","protocol","port","hostname","tag","asn","geo"']
    for i, ip in enumerate(ips):
        lines.append(f'"{date} 0{i % 10}:00:00","{ip}","tcp",3389,"","rdp",,"NL"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
