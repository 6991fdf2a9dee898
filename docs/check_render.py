"""Check that the documentation site renders in a real browser: headless Chromium.

Builds the site (``mkdocs build --strict`` into a temporary folder), serves it over HTTP on
localhost, and for the quick start and one analysis page: dumps the DOM that Chromium rendered
(the page's title and first heading must be there, and the theme's stylesheet must have been
applied) and writes a screenshot to ``docs/screenshots/`` (checked to be neither blank nor
tiny). Needs the ``docs`` extra and a Chromium binary (``chromium``, ``chromium-browser`` or
``google-chrome`` on the PATH, or ``CHROMIUM=/path/to/binary``; on Debian/Ubuntu ``apt-get install
chromium``)::

    pip install ".[docs]"
    python docs/check_render.py            # exit status 0: both pages render
    python docs/check_render.py --out DIR  # screenshots elsewhere

It is a documented manual check, not part of CI (CI machines need not have a browser).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: (page path in the site, text its heading must hold, screenshot name)
PAGES = [
    ("quickstart/", "Quick start", "quickstart.png"),
    ("analyses/com/", "Centre of mass", "analysis-com.png"),
]


def find_chromium() -> str:
    """The Chromium binary: ``$CHROMIUM`` or the first known name on the PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return str(shutil.which(name))
    sys.exit("no Chromium found: install it (apt-get install chromium) or set CHROMIUM=...")


def chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium; as root it needs --no-sandbox."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


def check_and_shrink_png(path: Path) -> None:
    """The screenshot is not tiny and not one flat colour; store it with a 64-colour palette
    (small enough to commit)."""
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    stat = ImageStat.Stat(rgb.convert("L"))
    if rgb.size[0] < 800 or stat.stddev[0] < 10:
        sys.exit(f"{path}: looks blank ({rgb.size}, grey std {stat.stddev[0]:.1f})")
    rgb.quantize(colors=64).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    binary = find_chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
            cwd=ROOT,
            check=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
        handler = functools.partial(QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            for page, heading, shot in PAGES:
                url = base + page
                dom = chromium(binary, "--dump-dom", url).stdout
                if heading not in dom or "md-header" not in dom:
                    sys.exit(f"{url}: the rendered page lacks {heading!r} or the theme's header")
                png = args.out / shot
                chromium(binary, f"--screenshot={png}", "--window-size=1100,800", url)
                check_and_shrink_png(png)
                print(f"{url}: rendered, screenshot {png} ({png.stat().st_size // 1024} KiB)")
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
