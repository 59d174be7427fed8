"""What `describe` and `config` print (issue 11, item 7): output for people shows no
Python values (None, False, True, dict or list reprs), numbers carry their unit; in
--json a value has one type everywhere (config values are integers or null, whether
override, default or effective)."""

from __future__ import annotations

import json
import os
import re

import pytest

from fuse_helpers import run

pytestmark = pytest.mark.fuse

PYTHONISMS = re.compile(r"\b(None|True|False)\b|[{}\[\]]|'")


def _human(m, *args: str) -> str:
    out = m.logfs(*args).stdout
    bad = [ln for ln in out.splitlines() if PYTHONISMS.search(ln)]
    assert not bad, f"Python values in `logfs {' '.join(args)}`:\n" + "\n".join(bad)
    return out


def _config_values(d: dict):
    for field in ("overrides", "effective", "defaults", "config", "config_overrides"):
        for key, value in (d.get(field) or {}).items():
            yield field, key, value


def test_human_output_has_no_python_values(mount_factory):
    m = mount_factory("segment.bytes=1048576")
    os.mkdir(m.p("orders"))
    run(f"echo '{{\"id\":1}}' >> {m.p('orders', 'eu')}")
    os.mkdir(m.p("empty"))
    run(f"touch {m.p('empty', 'new')}")
    m.logfs("config", m.p("orders"), "retention.ms=604800000")
    root = _human(m, "describe", str(m.mnt))
    assert "auto_inval_data      off" in root and "0 s (exact)" in root, root
    log = _human(m, "describe", m.p("orders", "eu"))
    assert re.search(r"flush.ms +none \(the page cache decides\)", log), log
    assert "604800000 (7 days)" in log and "1048576 (1 MiB)" in log, log
    assert "-1 (keep all)" in log
    fresh = _human(m, "describe", m.p("empty", "new"))
    assert "last_append_ms    none (nothing appended yet)" in fresh, fresh
    _human(m, "describe", m.p("orders"))
    cfg = _human(m, "config", m.p("orders", "eu"))
    assert re.search(r"retention\.ms\s+604800000 \(7 days\)\s+topic\n", cfg), cfg
    assert re.search(r"segment\.bytes\s+1048576 \(1 MiB\)\s+mount \(-o\)\n", cfg), cfg
    _human(m, "config", m.p("orders"))
    _human(m, "config", str(m.mnt))


def test_json_config_values_have_one_type(mount_factory):
    m = mount_factory("segment.bytes=1048576,flush.ms=none")
    os.mkdir(m.p("orders"))
    run(f"echo x >> {m.p('orders', 'eu')}")
    m.logfs("config", m.p("orders"), "retention.ms=604800000")
    m.logfs("config", m.p("orders", "eu"), "retention.bytes=1073741824")
    docs = [m.describe(), m.describe("orders"), m.describe("orders", "eu")]
    for parts in ((), ("orders",), ("orders", "eu")):
        docs.append(json.loads(m.logfs("config", "--json", m.p(*parts)).stdout))
    seen = 0
    for d in docs:
        for field, key, value in _config_values(d):
            seen += 1
            if key == "flush.ms":
                assert value is None, (field, key, value)
            else:
                assert type(value) is int, (field, key, value)
    assert seen >= 20
    assert docs[1]["config_overrides"] == {"retention.ms": 604800000}
    assert docs[4]["overrides"] == {"retention.ms": 604800000}
    assert docs[5]["overrides"] == {"retention.bytes": 1073741824}
    assert docs[2]["config_overrides"] == docs[5]["overrides"]
    assert docs[0]["defaults"] == {"segment.bytes": 1048576, "flush.ms": None} or \
        docs[0]["defaults"] == {"flush.ms": None, "segment.bytes": 1048576}
    assert all(d["mounted"] is True for d in docs)


def test_offline_and_mounted_describe_agree(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    run(f"printf 'a\\nb\\n' >> {m.p('t', 'l')}")
    m.logfs("config", m.p("t", "l"), "retention.ms=60000")
    online = m.describe("t", "l")
    m.umount()
    offline = json.loads(m.logfs("describe", "--json", str(m.data / "t" / "l")).stdout)
    online.pop("fuse")
    assert online.pop("mounted") is True and offline.pop("mounted") is False
    assert online == offline
