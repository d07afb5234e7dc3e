"""The docs: docs/ builds with MkDocs strictly (a link to a missing page or heading fails), renders
without the internet, and the README's layout table and links match the repository."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run([str(mkdocs), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300)


def test_the_docs_build_strictly_and_load_nothing_from_outside(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) >= 14
    # scripts, styles and images from the site itself: an air-gapped machine renders it whole
    outside = {m for page in pages for m in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"',
                                                     page.read_text())}
    assert not outside, f"assets loaded from outside: {sorted(outside)[:5]}"


def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "serving.md", "a") as f:
        f.write("\nSee [the old page](ranking-service.md) and [a heading](lifecycle.md#no-such-heading).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "ranking-service.md" in done.stderr, done.stderr[-2000:]


def layout_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def test_the_readme_layout_table_matches_the_folders():
    rows = layout_rows()
    missing = [row for row in rows if not (ROOT / row).exists()]
    assert not missing, f"the layout table names what is not there: {missing}"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    folders = {path.split("/")[0] + "/" for path in tracked if "/" in path and not path.startswith(".")}
    unlisted = folders - set(rows)
    assert not unlisted, f"folders the layout table does not describe: {sorted(unlisted)}"


def test_the_readmes_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((ROOT / link).exists() for link in links), [l for l in links if not (ROOT / l).exists()]
