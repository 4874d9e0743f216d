"""Email: .eml (the standard library's `email`, policy.default) and Outlook .msg (extract-msg).
The subject is the title, the date the published date; the sender and date head the text, then the
plain body (or the HTML body, cleaned as a web page is). Attachments of kinds kb reads travel with
the document, to be read as documents of their own; the others are named in a warning."""

from __future__ import annotations

import logging
import mimetypes
import re
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath, PureWindowsPath

from kb.errors import LoadError
from kb.models import Attachment, Block, LoadedDocument

from .archive import words
from .dates import normalize_date
from .detect import detect
from .html import load_html
from .textfile import clean, decode, paragraphs

# A MIME bomb is thousands of parts, or parts nested thousands deep (each level costs the parser a
# few stack frames): real messages hold a few dozen parts, nested three or four deep.
MAX_PARTS = 1_000
MAX_DEPTH = 20
MAX_ATTACHMENTS = 100
_PART_HEADER = re.compile(rb"^content-type:", re.I | re.M)
logging.getLogger("extract_msg").setLevel(logging.CRITICAL)


def load_eml(data: bytes, name: str) -> LoadedDocument:
    parts = len(_PART_HEADER.findall(data))
    if parts > MAX_PARTS:
        raise LoadError(f"MIME bomb: {parts:,} parts, more than the limit of {MAX_PARTS:,}: refused")
    try:
        message = message_from_bytes(data, policy=policy.default)
        _check_depth(message, 0)
        subject, sender, date = (_header(message, h) for h in ("subject", "from", "date"))
        stamp = message["date"].datetime if message["date"] is not None else None
    except RecursionError:
        raise LoadError(f"MIME bomb: parts nested more than {MAX_DEPTH} deep: refused") from None
    if not any(message.keys()):
        raise LoadError("not an email message: no headers")
    body = _body(message)
    found: list[Attachment] = []
    _attachments(message, body, found, 0)
    published = normalize_date(stamp.date().isoformat()) if stamp else None
    return _document(subject, sender, date, published, _body_blocks(body, name), found, "message/rfc822")


def load_msg(data: bytes, name: str) -> LoadedDocument:
    import extract_msg

    try:
        message = extract_msg.openMsg(data, strict=False)
    except RecursionError:
        raise LoadError(f"Outlook message nested more than {MAX_DEPTH} deep: refused") from None
    except Exception as exc:  # extract-msg and olefile raise many kinds for a broken file
        raise LoadError(f"corrupt Outlook message: {str(exc)[:200]}") from None
    try:
        subject = words(getattr(message, "subject", None))
        sender = words(getattr(message, "sender", None))
        stamp = getattr(message, "date", None) or _header_date((getattr(message, "header", None) or {}).get("date"))
        text = getattr(message, "body", None) or ""
        html = getattr(message, "htmlBody", None) if not text.strip() else None
        attachments = list(getattr(message, "attachments", None) or [])
        if len(attachments) > MAX_PARTS:
            raise LoadError(f"Outlook message has {len(attachments):,} attachments, more than the limit of "
                            f"{MAX_PARTS:,}")
        found = [a for a in (_msg_attachment(att, n) for n, att in enumerate(attachments, start=1)) if a]
    except (LoadError, RecursionError):
        raise
    except Exception as exc:  # extract-msg reads properties lazily: a broken one surfaces here
        raise LoadError(f"corrupt Outlook message: {str(exc)[:200]}") from None
    finally:
        message.close()
    blocks = paragraphs(clean(text)) if text.strip() else (_html_blocks(html, name) if html else [])
    date = stamp.strftime("%d %B %Y %H:%M") if isinstance(stamp, datetime) else ""
    published = normalize_date(stamp.date().isoformat()) if isinstance(stamp, datetime) else None
    return _document(subject, sender, date, published, blocks, found, "application/vnd.ms-outlook")


def _document(subject: str, sender: str, date: str, published: str | None, body: list[Block],
              found: list[Attachment], mime: str) -> LoadedDocument:
    """The message as a document: a line of who and when, the body, the attachments named; the
    attachments kb can read are kept (unique names), the others named in a warning."""
    head = "\n".join(line for line in (f"From: {sender}" if sender else "", f"Date: {date}" if date else "") if line)
    blocks = ([Block(head, "para")] if head else []) + body
    kept, warnings, names = [], [], set()
    for attachment in found[:MAX_ATTACHMENTS]:
        name = _unique(attachment.name, names)
        try:
            detect(attachment.data, name)
        except LoadError as exc:
            warnings.append(f"attachment {name} not read: {exc}")
            continue
        kept.append(Attachment(name, attachment.data))
    if len(found) > MAX_ATTACHMENTS:
        warnings.append(f"only the first {MAX_ATTACHMENTS} of {len(found)} attachments were read")
    if found:
        blocks.append(Block("Attachments: " + ", ".join(sorted(names)), "para"))
    if not any(b.text.strip() for b in blocks):
        raise LoadError("empty email message: no subject, sender or text")
    return LoadedDocument(blocks=blocks, title=subject or None, published=published, mime=mime,
                          warnings=warnings, attachments=kept)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return words(str(message[name] or ""))
    except (ValueError, TypeError, IndexError, AttributeError):  # a header the parser cannot make out
        return ""


def _header_date(value) -> datetime | None:
    """The date an Outlook message's internet headers give, when its own properties give none."""
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (ValueError, TypeError, IndexError):
        return None


def _check_depth(part: EmailMessage, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LoadError(f"MIME bomb: parts nested more than {MAX_DEPTH} deep: refused")
    if part.is_multipart():
        for inner in part.iter_parts():
            _check_depth(inner, depth + 1)


def _body(message: EmailMessage) -> EmailMessage | None:
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _text(part: EmailMessage) -> str:
    """A text part's content, decoded by its charset (or as plain text is, when that is unknown)."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, ValueError, KeyError, AssertionError):
        return decode(part.get_payload(decode=True) or b"")


def _body_blocks(body: EmailMessage | None, name: str) -> list[Block]:
    if body is None:
        return []
    if body.get_content_type() == "text/html":
        return _html_blocks(_text(body).encode("utf-8"), name)
    return paragraphs(clean(_text(body)))


def _html_blocks(html: bytes, name: str) -> list[Block]:
    try:
        return load_html(html, name).blocks
    except LoadError:  # an HTML body with no text: the message may still have a subject
        return []


def _attachments(part: EmailMessage, body: EmailMessage | None, found: list[Attachment], depth: int) -> None:
    """The files a message carries: parts sent as attachments or with a file name, and attached
    messages whole (their own attachments go with them). Images inline in the HTML body are not."""
    for inner in part.iter_parts() if part.is_multipart() else ():
        if inner is body:
            continue
        if inner.get_content_type() == "message/rfc822":
            try:
                attached = inner.get_content()
            except (KeyError, ValueError, TypeError, AttributeError, LookupError):
                continue
            name = _name(inner.get_filename(), _header(attached, "subject") or "message", ".eml", True)
            found.append(Attachment(name, attached.as_bytes()))
        elif inner.is_multipart():
            _attachments(inner, body, found, depth + 1)
        elif inner.get_filename() or inner.is_attachment():
            if inner.get_content_maintype() == "image" and inner["content-id"] and not inner.is_attachment():
                continue
            data = inner.get_payload(decode=True) or b""
            suffix = mimetypes.guess_extension(inner.get_content_type()) or ""  # for a part sent without a name
            found.append(Attachment(_name(inner.get_filename(), f"attachment-{len(found) + 1}", suffix), data))


def _msg_attachment(attachment, number: int) -> Attachment | None:
    """An Outlook attachment's file; an attached message as .msg; None for a link or a broken one."""
    try:
        data = attachment.data
        name = getattr(attachment, "name", None)
        if data is not None and not isinstance(data, bytes) and hasattr(data, "exportBytes"):
            return Attachment(_name(name, words(getattr(data, "subject", "")) or "message", ".msg", True),
                              data.exportBytes())
        if isinstance(data, bytes):
            return Attachment(_name(name, f"attachment-{number}", ""), data)
    except Exception:  # extract-msg raises many kinds for a broken attachment
        return None
    return None


def _name(given: str | None, fallback: str, suffix: str, always: bool = False) -> str:
    """A plain file name (no folders, no control characters, at most 120 characters), given
    `suffix` when it has no extension of its own (`always`: unless it ends so already)."""
    name = PureWindowsPath(PurePosixPath(given or "").name).name
    name = "".join(ch for ch in name if ch.isprintable()).strip().strip(".")
    if not name:
        name = "".join(ch for ch in fallback if ch.isprintable())[:100].strip() or "attachment"
    if suffix and not (name.lower().endswith(suffix) if always else PurePosixPath(name).suffix):
        name += suffix
    return name[-120:]


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{stem} ({n}){dot}{ext}"
        n += 1
    taken.add(candidate)
    return candidate
