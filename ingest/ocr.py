"""Text from pictures of pages (scanned PDF pages, PNG, JPEG and TIFF files) by Tesseract OCR.

Debian's `tesseract` binary does the reading, through pytesseract, one page at a time with its own
time limit. Every image is checked for size from its header before it is decoded, so a small file
claiming 20,000 x 20,000 pixels is refused without holding them in memory.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Callable

from kb.errors import ConfigError, LoadError
from kb.models import Block

from .textfile import clean

NEEDS_TESSERACT = "OCR needs Tesseract: apt-get install tesseract-ocr"
LANGS = re.compile(r"[A-Za-z_]+(\+[A-Za-z_]+)*")  # Tesseract's -l argument: eng, eng+fra, chi_sim
# pages above this resolution are scaled down to it first: Tesseract reads 300 dpi text as well as
# 600 dpi text, and a quarter of the pixels takes about a quarter of the time
READ_DPI = 300
HEADERS = [(b"\x89PNG", "a PNG"), (b"\xff\xd8\xff", "a JPEG"), (b"II*\x00", "a TIFF"), (b"MM\x00*", "a TIFF")]


class PageNotRead(LoadError):
    """One page could not be read (too slow, or Tesseract failed on it): the file's other pages can be."""


def scanned_note(pages: list[int] | None) -> str:
    """The warning a document read by OCR keeps (its page shows it): which pages, and what to mind."""
    where = f" ({_pages(pages)})" if pages else ""
    return (f"text read from a scan{where} by OCR: a word may be misread, so check names and "
            "figures against the original")


@dataclass(frozen=True)
class OcrOptions:
    """How scans are read: from the settings (KB_OCR...), sent to the loader worker with each file."""

    enabled: bool = True
    langs: str = "eng"
    page_seconds: float = 60.0
    max_pages: int = 100
    max_pixels: int = 100_000_000
    # called with a page's time limit before each page is read: the worker's keep-alive, which
    # moves the file's deadline on by that much (ingest/isolate.py)
    on_page: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings) -> "OcrOptions":
        return cls(settings.ocr, settings.ocr_langs, settings.ocr_page_seconds, settings.ocr_max_pages,
                   settings.ocr_max_pixels)

    def wire(self) -> dict:
        """The options as JSON can carry them (no keep-alive)."""
        return {k: v for k, v in asdict(self).items() if k != "on_page"}


def check_pixels(width: int, height: int, options: OcrOptions, what: str) -> None:
    """Refuse an image with more pixels than the limit, before any of them is decoded."""
    if width * height > options.max_pixels:
        raise LoadError(f"{what} refused: {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} million), "
                        f"more than the limit of {options.max_pixels / 1e6:,.0f} million (KB_OCR_MAX_PIXELS)")


def check_ready(options: OcrOptions) -> None:
    """Tesseract is installed and has every language asked for; LoadError saying what to install."""
    import pytesseract

    binary = shutil.which(pytesseract.pytesseract.tesseract_cmd)
    if binary is None:
        raise LoadError(NEEDS_TESSERACT)
    missing = check_languages(options.langs, binary)
    if missing:
        raise LoadError(missing)


def check_languages(langs: str, binary: str | None = None) -> str:
    """Why KB_OCR_LANGS cannot work with the Tesseract installed here, or "" (also when there is none)."""
    import pytesseract

    binary = binary or shutil.which(pytesseract.pytesseract.tesseract_cmd)
    if binary is None:
        return ""
    have = installed_languages(binary)
    missing = [lang for lang in langs.split("+") if lang not in have]
    if not missing:
        return ""
    packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
    return (f"KB_OCR_LANGS={langs}: Tesseract here has no {', '.join(missing)} (it has "
            f"{', '.join(sorted(have - {'osd'})) or 'none'}): apt-get install {packages}")


def check_setting(langs: str) -> None:
    """At the start of a run: KB_OCR_LANGS names languages the Tesseract here has (ConfigError if not)."""
    problem = check_languages(langs)
    if problem:
        raise ConfigError(problem)


@functools.lru_cache(maxsize=4)
def installed_languages(binary: str) -> frozenset[str]:
    try:
        listed = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in listed.splitlines()[1:] if LANGS.fullmatch(line.strip()))


def read_image(image, options: OcrOptions, where: str, dpi: float | None = None) -> str:
    """The text of one page's picture: lines, with a blank line between paragraphs. `where` names the
    page in a refusal ("page 3"); `dpi` is the picture's resolution when known."""
    import pytesseract

    check_pixels(*image.size, options, where)
    check_ready(options)
    image, dpi = _prepared(image, dpi)
    if options.on_page:
        options.on_page(options.page_seconds)
    config = f"--dpi {round(dpi)}" if dpi and 50 <= dpi <= 2400 else ""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one page, one core: threads only contend here
    try:
        found = pytesseract.image_to_data(image, lang=options.langs, config=config, timeout=options.page_seconds,
                                          output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError:
        raise LoadError(NEEDS_TESSERACT) from None
    except pytesseract.TesseractError as exc:
        raise PageNotRead(f"OCR failed on {where}: {' '.join(str(exc.message).split())[:200]}") from None
    except RuntimeError as exc:  # pytesseract's timeout
        if "timeout" not in str(exc).lower():
            raise
        raise PageNotRead(f"OCR of {where} took longer than the limit of {options.page_seconds:g} s "
                        "(KB_OCR_PAGE_SECONDS)") from None
    return clean(lines_of(found))


def lines_of(found: dict) -> str:
    """Tesseract's words (image_to_data) back into lines, and paragraphs apart by a blank line."""
    paragraphs: dict[tuple, dict[int, list[str]]] = {}
    for n, word in enumerate(found["text"]):
        if word and word.strip():
            key = (found["page_num"][n], found["block_num"][n], found["par_num"][n])
            paragraphs.setdefault(key, {}).setdefault(found["line_num"][n], []).append(word.strip())
    return "\n\n".join("\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())


def blocks(text: str, page: int | None) -> list[Block]:
    """Paragraphs of OCR'd text as blocks; a word broken over two lines is joined again."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        body = re.sub(r"(\w)- (\w)", r"\1\2", " ".join(para.split()))
        if body:
            out.append(Block(body, "para", 0, page))
    return out


def open_image(data: bytes, options: OcrOptions, what: str = "image"):
    """A Pillow image from a file's bytes, its size checked from the header against our own limit
    (KB_OCR_MAX_PIXELS, which names the size) rather than Pillow's."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the loaders run one file at a time: checked below instead
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        kind = next((k for magic, k in HEADERS if data.startswith(magic)), "an image")
        raise LoadError(f"corrupt image: it starts as {kind} does, but cannot be read as one") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise LoadError(f"corrupt image: {_short(exc)}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    check_pixels(*image.size, options, what)
    return image


def _prepared(image, dpi: float | None):
    """The picture as Tesseract reads it best: grey levels (or bilevel), on white where it had
    transparency, and no finer than READ_DPI."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode not in ("1", "L"):
        image = image.convert("L")
    if dpi and dpi > READ_DPI * 1.2:
        scale = READ_DPI / dpi
        image = image.convert("L").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                          Image.Resampling.LANCZOS)
        dpi = READ_DPI
    return image, dpi


def _pages(pages: list[int]) -> str:
    """"page 3" or "pages 1-4, 7"."""
    runs, start = [], None
    for n, page in enumerate(pages):
        if start is None:
            start = page
        if n + 1 == len(pages) or pages[n + 1] != page + 1:
            runs.append(f"{start}" if start == page else f"{start}-{page}")
            start = None
    return ("page " if len(pages) == 1 else "pages ") + ", ".join(runs)


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
