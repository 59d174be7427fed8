"""README.md, CHANGELOG.md and docs/ stay inside the repository and agree with the
code (issue 11: the README linked ../shared/SPEC.md, which users do not have)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fuse_helpers import REPO
from logfs.core.config import CONFIG_KEYS, LogConfig
from logfs.fusefs.mount import ADAPTER_OPTIONS

DOCS = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md"),
               *(REPO / "examples").glob("*")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", md.read_text(), re.M)}


@pytest.mark.parametrize("doc", [d for d in DOCS if d.suffix == ".md"],
                         ids=lambda d: str(d.relative_to(REPO)))
def test_links_stay_in_the_repository_and_resolve(doc):
    text = doc.read_text()
    assert "../shared" not in text and "shared/SPEC" not in text
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.is_relative_to(REPO), f"{doc.name}: {target} leaves the repository"
        assert dest.exists(), f"{doc.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{doc.name}: no heading #{anchor} in {path}"


def test_every_spec_reference_points_into_the_repository():
    for doc in DOCS:
        if doc.is_file():
            for m in re.finditer(r"SPEC[ §.]", doc.read_text()):
                line = doc.read_text()[:m.start()].count("\n") + 1
                assert doc.name == "spec.md", f"{doc.name}:{line} cites SPEC, not docs/spec.md"


def test_spec_has_the_twelve_sections_and_each_is_built():
    text = (REPO / "docs" / "spec.md").read_text()
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)]
    assert numbers == list(range(1, 13))
    sections = re.split(r"^## \d+\. ", text, flags=re.M)[1:]
    for n, section in enumerate(sections, 1):
        assert "planned" not in section and "not built" not in section, n


def test_config_reference_lists_every_key_with_its_default():
    text = (REPO / "docs" / "config.md").read_text()
    defaults = LogConfig().as_kafka_dict()
    for key in CONFIG_KEYS:
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{key}` |")), None)
        assert row, f"{key} missing from docs/config.md"
        default = defaults[key]
        shown = "none" if default is None else f"`{default}`"
        assert shown in row.split("|")[3], (key, row)
    for option in ADAPTER_OPTIONS:
        assert f"| `{option}` |" in text, f"mount option {option} missing from docs/config.md"


def test_config_reference_names_the_json_fields_describe_prints(tmp_path):
    from logfs.core import open_log_store
    from logfs.fusefs import control
    text = (REPO / "docs" / "config.md").read_text()

    def fields(row_start: str) -> set[str]:
        row = next(ln for ln in text.splitlines() if ln.startswith(row_start))
        cell = re.sub(r"\([^)]*\)", "", row.split("|")[2])  # not the notes in parentheses
        return set(re.findall(r"`([a-z_]+)`", cell))

    with open_log_store(str(tmp_path)) as store:
        store.create_topic("t")
        store.create_log("t", "l")
        log = set(control.describe_log(store, "t", "l")) | {"mounted", "fuse"}
        topic = set(control.describe_topic(store, "t")) | {"mounted"}
        conf = set(control.config_view(store, ("t", "l"), {})) | {"mounted"}
    assert fields("| a log (`describe`)") == log
    assert fields("| a topic (`describe`)") == topic
    assert fields("| config of a log or topic") == conf


def test_changelog_has_an_unreleased_section():
    text = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## Unreleased$", text, re.M)


def test_readme_uses_the_default_port_and_existing_make_targets():
    readme = (REPO / "README.md").read_text()
    assert "8080" not in readme and "8480" in readme
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"make (\w+)", readme):
        assert re.search(rf"^{target}:", makefile, re.M), f"README names make {target}"
