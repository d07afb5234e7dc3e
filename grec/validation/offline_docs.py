"""Great Expectations' Data Docs, made to render without the internet. GX's pages load Bootstrap,
jQuery, bootstrap-table, Vega and Font Awesome from CDNs, so on an air-gapped machine (a cluster
without egress) the index is an empty, unstyled page. The same files, from the npm registry, ship
with the platform (docs_assets/, one folder per package@version, with its license; SOURCES.md);
each built site gets a copy and every page's CDN address becomes the copy's relative path."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).with_name("docs_assets")
VENDOR = "static/vendor"  # inside the site
# GX 1.x's CDN addresses -> the shipped file (package@version/file)
CDN = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap@4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap@4.3.1/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js@1.12.9/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table@1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table@1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.0/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.0/bootstrap-table-filter-control.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free@6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark@1.1.0/bootstrap-prefers-dark.css",
}
# GX's logo, fetched from its web assets with the date and the data context's id in the query
LOGO = re.compile(r'https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/logo-long\.png\?[^"\']*')
STATIC = re.compile(r'((?:src|href))="(?:\.\./)+static/')
ASSET = re.compile(r'<(?:script|link|img)\b[^>]*?(?:src|href)="(https?://[^"]+)"')


def make_offline(site: Path) -> list[str]:
    """Copy the shipped assets into `site` and point every page at them; returns the external
    asset addresses still left in its pages (none for the GX release in the lock)."""
    site = Path(site)
    shutil.copytree(ASSETS, site / VENDOR, dirs_exist_ok=True)
    left = set()
    for page in site.rglob("*.html"):
        to_site = os.path.relpath(site, page.parent)
        html = page.read_text(encoding="utf-8")
        for url, local in CDN.items():
            html = html.replace(f'"{url}"', f'"{to_site}/{VENDOR}/{local}"')
        html = LOGO.sub(f"{to_site}/static/images/logo-long.png", html)
        # the site's own files at the page's real depth (GX puts the favicon of a validation page one level short)
        html = STATIC.sub(f'\\1="{to_site}/static/', html)
        page.write_text(html, encoding="utf-8")
        left.update(ASSET.findall(html))
    return sorted(left)
