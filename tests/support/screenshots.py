"""Photograph every page of the site at desktop and phone width, as the accessibility tests visit it.

    .venv/bin/python tests/support/screenshots.py                 # docs/images/pages/ and docs/screenshots.md
    .venv/bin/python tests/support/screenshots.py --out /tmp/shots --full-page

Ingests corpus/ into a temporary folder with the real model, adds an account per role and some
finished jobs (tests/support/tour.py), serves it on a free loopback port inside this process and
drives Debian's Chromium through Playwright. Each page is taken as the first role that visits it
in the tour (anonymous for public pages, a partner for the password page, a curator for /admin).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("KB_MODEL_CACHE", str(ROOT / ".cache" / "models"))

from support.tour import CHROMIUM_ARGS, WIDTHS, furnish, serving, sign_in, stops  # noqa: E402

GALLERY = ROOT / "docs" / "screenshots.md"


def photograph(out: Path, full_page: bool) -> list[tuple[str, str, dict[str, Path]]]:
    """Every stop at every width; returns (stop, role, {width: file})."""
    from playwright.sync_api import sync_playwright

    from ingest.pipeline import ingest_paths
    from kb.collection import KnowledgeBase
    from kb.embed import Embedder
    from kb.settings import Settings
    from web import create_app

    out.mkdir(parents=True, exist_ok=True)
    taken = []
    with tempfile.TemporaryDirectory(prefix="kb-shots-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        kb = KnowledgeBase.open(settings, Embedder.for_settings(Settings.from_env()))
        ingest_paths(kb, [ROOT / "corpus"])
        furnished = furnish(kb)
        app = create_app(settings, {"START_WORKER": False}, kb=kb)
        with serving(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            contexts = {}  # (role, width) -> a page signed in as that role
            for stop in stops(furnished, app.view_functions):
                role, files = stop.roles[0], {}
                for width, options in WIDTHS.items():
                    if (role, width) not in contexts:
                        page = browser.new_context(**options).new_page()
                        sign_in(page, base, role)
                        contexts[role, width] = page
                    page = contexts[role, width]
                    page.goto(base + stop.path)
                    if stop.then:
                        stop.then(page)
                    files[width] = out / f"{stop.name}-{width}.png"
                    page.screenshot(path=str(files[width]), full_page=full_page)
                    _shrink(files[width])
                taken.append((stop.name, role, files))
                print(f"{stop.name} ({role})", file=sys.stderr)
            browser.close()
        kb.close()
    return taken


def _shrink(path: Path) -> None:
    """256 colours, undithered: a third of the bytes, and no visible change to pages of flat colours and text."""
    from PIL import Image

    with Image.open(path) as image:
        fewer = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    fewer.save(path, optimize=True)


def gallery(taken, out: Path) -> str:
    lines = ["# Every page, at desktop and phone width", "",
             "Taken by `tests/support/screenshots.py` (rerun it after changing a page); the accessibility tests",
             "(tests/test_accessibility.py) check the same pages with axe-core for every role at both widths.", ""]
    for name, role, files in taken:
        lines += [f"## {name} ({role})", ""]
        lines += [" ".join(f"<img src=\"{os.path.relpath(files[w], GALLERY.parent)}\" alt=\"{name}, {w}\" "
                           f"width=\"{480 if w == 'desktop' else 180}\">" for w in WIDTHS), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "pages")
    parser.add_argument("--full-page", action="store_true", help="the whole page, not just the first screen")
    args = parser.parse_args(argv)
    taken = photograph(args.out, args.full_page)
    if args.out.resolve() == (ROOT / "docs" / "images" / "pages").resolve():
        GALLERY.write_text(gallery(taken, args.out))
    print(f"{sum(len(f) for _, _, f in taken)} screenshots in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
