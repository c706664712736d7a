"""The loopback guard's rules as iptables receives them (the live rules are tested in tests/runtime_local and
tests/security): every protocol to this machine refused, DNS kept, and the ``outbound`` choice for other hosts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from spaces.runtime import netguard


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# local resolver and one upstream\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n")
    monkeypatch.setattr(netguard, "nameservers", lambda: netguard._read_ns(str(resolv)))
    monkeypatch.setattr(netguard, "_tools", lambda: ["/usr/sbin/iptables"])
    calls: list[list[str]] = []

    def run(args, **kw):  # noqa: ANN001, ANN003
        calls.append(args[2:])
        return subprocess.CompletedProcess(args, 1 if "-C" in args else 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)

    def install(outbound: str) -> list[str]:
        calls.clear()
        assert netguard.install(30000, 30999, [8000], outbound=outbound) is None
        return [" ".join(c) for c in calls if c[0] == "-A"]
    return install


def test_nothing_of_this_machine_but_the_open_ports_and_dns(rules) -> None:  # noqa: ANN001
    lo = [r for r in rules("internet") if r.startswith("-A SPACES-LO-30000")]
    assert lo == ["-A SPACES-LO-30000 -p tcp --dport 8000 -j ACCEPT",
                  "-A SPACES-LO-30000 -d 127.0.0.53 -p udp --dport 53 -j RETURN",
                  "-A SPACES-LO-30000 -d 127.0.0.53 -p tcp --dport 53 -j RETURN",
                  # a resolver on one of this host's own addresses is reached through lo too
                  "-A SPACES-LO-30000 -d 10.1.2.3 -p udp --dport 53 -j RETURN",
                  "-A SPACES-LO-30000 -d 10.1.2.3 -p tcp --dport 53 -j RETURN",
                  "-A SPACES-LO-30000 -p tcp -j REJECT --reject-with tcp-reset",
                  "-A SPACES-LO-30000 -j REJECT"]  # UDP and every other protocol


def test_outbound_internet_all_and_none(rules) -> None:  # noqa: ANN001
    out = [r.removeprefix("-A SPACES-OUT-30000 ") for r in rules("internet") if "SPACES-OUT" in r]
    dns = out[:4]
    assert all("--dport 53 -j RETURN" in r for r in dns) and "-d 10.1.2.3 -p udp --dport 53 -j RETURN" in dns
    assert out[4:] == [f"-d {net} -j REJECT" for net in netguard.PRIVATE["iptables"]]
    assert "-d 169.254.0.0/16 -j REJECT" in out  # the cloud metadata endpoint
    assert [r for r in rules("all") if "SPACES-OUT" in r] == []
    none = [r.removeprefix("-A SPACES-OUT-30000 ") for r in rules("none") if "SPACES-OUT" in r]
    assert none[-1] == "-d 0.0.0.0/0 -j REJECT" and all("--dport 53" in r for r in none[:-1])
    with pytest.raises(ValueError, match="outbound"):
        netguard.install(30000, 30999, [], outbound="everything")
