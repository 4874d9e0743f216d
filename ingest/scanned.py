"""Scanned PDF pages: a page without a text layer is read from the picture it shows, by OCR.

A scanner or copier makes each page one embedded image; the largest image on a page is read.
A page drawn only with vector shapes (no text, no picture) is not covered, nor text split over
several tiled images (only the largest is read). A page that has a text layer is never OCR'd.
"""

from __future__ import annotations

from kb.errors import LoadError

from .ocr import OcrOptions, PageNotRead, check_pixels, read_image

MIN_SIDE = 100  # pixels: a smaller picture is a logo or a bullet, not a page
MAX_DEPTH = 4  # forms inside forms looked into for a page's pictures


def read_scans(reader, texts: list[str], options: OcrOptions) -> tuple[list[str], list[int], list[int], list[str]]:
    """`texts` (one per page) with every page that has no text but a picture read by OCR; the page
    numbers that gave words; the page numbers that had a picture to read; why a page could not be
    read (it is left out). With OCR off, nothing is read. LoadError when nothing could be read, or
    for what no page can get past (a picture over the pixel limit, no Tesseract)."""
    from pypdf.errors import DependencyError, LimitReachedError

    pictured = [(n, found) for n, text in enumerate(texts) if not text.strip()
                for found in [_largest_picture(reader.pages[n])] if found]
    if not pictured or not options.enabled:
        return texts, [], [n + 1 for n, _ in pictured], []
    if len(pictured) > options.max_pages:
        raise LoadError(f"scanned PDF: {len(pictured)} pages to read by OCR, more than the limit of "
                        f"{options.max_pages} (KB_OCR_MAX_PAGES)")
    texts, read, unread = list(texts), [], []
    for n, (key, width, height) in pictured:
        page, where = reader.pages[n], f"page {n + 1}"
        check_pixels(width, height, options, f"{where}: its scanned image")
        try:
            image = page.images[key].image
            if image is None:
                raise ValueError("no picture decoded")
            rotation = page.rotation % 360
            if rotation:  # the page is shown turned: read the picture the way it is shown
                image = image.rotate(-rotation, expand=True)
            inches = float(page.mediabox.height if rotation in (90, 270) else page.mediabox.width) / 72
        except LoadError:
            raise
        except LimitReachedError:
            raise LoadError(f"PDF refused: {where}'s scanned image is over pypdf's safety limits "
                            "(a decompression bomb?)") from None
        except DependencyError as exc:
            unread.append(f"{where}: its scanned image cannot be decoded here: {_short(exc)}")
            continue
        except Exception as exc:  # pypdf and Pillow raise many kinds for a broken image
            unread.append(f"{where}: its scanned image is corrupt: {_short(exc)}")
            continue
        try:
            texts[n] = read_image(image, options, where, dpi=image.width / inches if inches > 0 else None)
        except PageNotRead as exc:
            unread.append(str(exc))
            continue
        if texts[n].strip():
            read.append(n + 1)
    if unread and not read and not any(text.strip() for text in texts):
        more = f" (and {len(unread) - 1} more page{'s' if len(unread) > 2 else ''})" if len(unread) > 1 else ""
        raise LoadError(f"no text found: {unread[0]}{more}")
    return texts, read, [n + 1 for n, _ in pictured], unread


def no_text_reason(options: OcrOptions, pictured: int) -> str:
    """Why a PDF gave no text at all, said for what OCR could and could not do about it."""
    if pictured and not options.enabled:
        return "no text found: scanned PDF without a text layer, and OCR is off (KB_OCR=0)"
    if pictured:
        return "no text found: OCR read no words from its scanned pages"
    return "no text found: scanned PDF without a text layer, and no scanned image to read (a drawing only?)"


def _largest_picture(page) -> tuple[str | tuple[str, ...], int, int] | None:
    """The key (in `page.images`), width and height of the page's largest image, from the image
    dictionaries alone (nothing decoded); None when it has none of a page's size."""
    best, seen = None, set()

    def visit(holder, path: tuple[str, ...], depth: int) -> None:
        nonlocal best
        try:
            xobjects = holder["/Resources"].get_object()["/XObject"].get_object()
        except (KeyError, AttributeError, TypeError):
            return
        for name in list(xobjects.keys())[:1000]:
            try:
                obj = xobjects[name].get_object()
                subtype = obj.get("/Subtype")
                ref = getattr(xobjects[name], "idnum", None) or id(obj)
            except Exception:
                continue
            if subtype == "/Image":
                width, height = obj.get("/Width"), obj.get("/Height")
                if isinstance(width, int) and isinstance(height, int) and min(width, height) >= MIN_SIDE:
                    if best is None or width * height > best[1] * best[2]:
                        key = path + (str(name),)
                        best = (key[0] if len(key) == 1 else key, int(width), int(height))
            elif subtype == "/Form" and depth < MAX_DEPTH and ref not in seen:
                seen.add(ref)
                visit(obj, path + (str(name),), depth + 1)

    visit(page, (), 0)
    return best


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
