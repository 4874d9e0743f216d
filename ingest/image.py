"""PNG, JPEG and TIFF files (a photographed handout, a page scanned to an image) read by OCR:
each frame of a multi-page TIFF is a page."""

from __future__ import annotations

from kb.errors import LoadError
from kb.models import LoadedDocument

from .ocr import OcrOptions, PageNotRead, blocks, check_pixels, open_image, read_image, scanned_note

IMAGES_OFF = "an image: its text is read only by OCR, which is off (KB_OCR=0)"
MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "TIFF": "image/tiff"}


def load_image(data: bytes, name: str, options: OcrOptions) -> LoadedDocument:
    from PIL import ImageOps

    if not options.enabled:
        raise LoadError(IMAGES_OFF)
    image = open_image(data, options)
    mime = MIMES.get(image.format or "", "image/png")
    frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    if frames > options.max_pages:
        raise LoadError(f"a TIFF of {frames} pages, more than the limit of {options.max_pages} to read by OCR "
                        "(KB_OCR_MAX_PAGES)")
    found, read, unread = [], [], []
    for frame in range(frames):
        page = frame + 1 if frames > 1 else None
        where = f"page {frame + 1}" if frames > 1 else "the image"
        try:
            image.seek(frame)
            check_pixels(*image.size, options, where)  # each frame has its own size: checked before decoding
            picture = ImageOps.exif_transpose(image)  # a phone's photo, turned the way it was taken
            picture.load()
        except LoadError:
            raise
        except Exception as exc:  # Pillow raises many kinds for a broken image
            raise LoadError(f"corrupt image: {where}: {(str(exc) or type(exc).__name__)[:200]}") from None
        dpi = image.info.get("dpi", (None,))[0]
        try:
            text = read_image(picture, options, where, dpi=float(dpi) if dpi and dpi > 72 else None)
        except PageNotRead as exc:
            if frames == 1:
                raise
            unread.append(str(exc))  # the other pages can still be read
            continue
        found += blocks(text, page)
        if text.strip():
            read.append(frame + 1)
    if not found:
        raise LoadError(f"no text found: {unread[0]}" if unread else "no text found: OCR read no words in the image")
    notes = [scanned_note(read if frames > 1 else None)] + [f"{reason}: left out" for reason in unread]
    return LoadedDocument(blocks=found, mime=mime, warnings=notes)
