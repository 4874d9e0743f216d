"""Shared fixtures: temporary collections, the real bundled model, a fast fake embedder, file makers."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parent.parent
# one ONNX export of the model for every test's data folder and every server a test starts
# (content-hashed, so a changed model or kb export format is exported afresh)
os.environ.setdefault("KB_MODEL_CACHE", str(ROOT / ".cache" / "models"))

from kb.collection import KnowledgeBase  # noqa: E402
from kb.embed import Embedder  # noqa: E402
from kb.settings import Settings  # noqa: E402

SHARED = ROOT.parent / "shared"


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, for unit tests of pure logic only."""

    model_id = "fake"
    dim = 64
    max_tokens = 256

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def encode_query(self, text):
        return self.encode([text])[0]


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request) -> str:
    """Each backend in turn: "" (SQLite + FAISS in the data folder) or a fresh PostgreSQL database."""
    return request.getfixturevalue("kb_database") if request.param == "postgresql" else ""


@pytest.fixture
def fake_kb(tmp_path, database_url):
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", model="fake", database_url=database_url),
                            FakeEmbedder())
    yield kb
    kb.close()


@pytest.fixture(scope="session")
def model() -> Embedder:
    """The real bundled all-MiniLM-L6-v2 as kb serves it (ONNX Runtime), loaded once for the run."""
    return Embedder.for_settings(Settings.from_env()).warm()  # load now, so test timings are honest


@pytest.fixture
def real_kb(tmp_path, model):
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data"), model)
    yield kb
    kb.close()


def make_pdf(pages: list[list[tuple[str, str]]], title: str | None = None) -> bytes:
    """A PDF with one list of (kind, text) per page; kind 'h1'/'h2' adds an outline entry."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    for page in pages:
        pdf.add_page()
        for kind, text in page:
            if kind.startswith("h"):
                pdf.start_section(text, level=int(kind[1]) - 1)
                pdf.set_font("helvetica", "B", 14)
                pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
                pdf.set_font("helvetica", size=11)
            else:
                pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
    return bytes(pdf.output())


def make_docx(items: list[tuple[str, str]], title: str | None = None) -> bytes:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for kind, text in items:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def encrypted_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def scanned_pdf() -> bytes:
    """A valid one-page PDF with a drawing and no text layer, as a scan without OCR would be."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)
    return bytes(pdf.output())


SCAN_TEXT = """Healthy Communities Together: a report from the Riverside partnership
The partnership brought together the local hospital trust, the council and four community charities to reduce \
loneliness among older people living alone. Volunteers from the food bank visited two hundred households each \
month and referred people to the walking group, the lunch club and the benefits advice service.
Staff said the most useful change was a shared referral form, which meant that nobody had to tell their story \
three times. Waiting times for a first visit fell from six weeks to nine days.
The steering group agreed to fund a second coordinator from April, and to publish what they learned for other sites."""
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # fonts-dejavu-core: `make ocr` installs it


def scan_image(text: str = SCAN_TEXT, dpi: int = 200, angle: float = 1.5, seed: int = 1):
    """A typed A4 page as a scanner gives it: 11 pt DejaVu Sans at `dpi`, turned slightly, with
    grey-level noise, specks of dust and the blur of the scanner's optics (a Pillow image, grey)."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    page = Image.new("L", (round(8.27 * dpi), round(11.69 * dpi)), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), round(11 / 72 * dpi))
    y = dpi
    for para in text.split("\n"):
        for line in textwrap.wrap(para, 80):
            draw.text((dpi, y), line, font=font, fill=0)
            y += round(font.size * 1.5)
        y += font.size
    page = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    rng = np.random.default_rng(seed)
    pixels = np.asarray(page, dtype=np.int16) + rng.normal(0, 12, (page.height, page.width)).astype(np.int16)
    specks = rng.random(pixels.shape)
    pixels[specks < 0.001], pixels[specks > 0.999] = 0, 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def image_file(image, kind: str, dpi: int = 200) -> bytes:
    """An image saved as a PNG, JPEG or TIFF file, or as a PDF page with no text layer."""
    buffer = io.BytesIO()
    options = {"pdf": {"resolution": dpi, "title": ""}, "jpeg": {"quality": 85, "dpi": (dpi, dpi)},
               "tiff": {"compression": "tiff_lzw", "dpi": (dpi, dpi)}, "png": {"dpi": (dpi, dpi)}}[kind]
    image.save(buffer, kind.upper(), **options)
    return buffer.getvalue()


def image_bomb(side: int = 20_000) -> bytes:
    """A valid one-bit PNG of side x side pixels, all white: 400 million pixels in about 50 KB."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    body = zlib.compress((b"\x00" + b"\xff" * ((side + 7) // 8)) * side, 9)  # each row: filter 0, then its bits
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


CORPUS = ROOT / "corpus"


@pytest.fixture(scope="session")
def corpus_kb(tmp_path_factory, model):
    """The sample corpus ingested once, with the real model, for the corpus, web and browser tests."""
    from ingest.pipeline import ingest_paths

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path_factory.mktemp("corpus") / "data"), model)
    report = ingest_paths(kb, [CORPUS])
    kb.ingest_report = report
    return kb


@pytest.fixture(scope="session")
def corpus_app(corpus_kb):
    from web import create_app

    app = create_app(corpus_kb.settings, {"TESTING": True}, kb=corpus_kb)
    return app


@pytest.fixture(scope="session")
def corpus_app_postgres(corpus_kb, postgres_server, kb_template, tmp_path_factory):
    """The same corpus on PostgreSQL: copied from the SQLite one by `kb copy`'s code (ids kept,
    nothing embedded again), served by its own app."""
    from kb.transfer import copy_collection
    from web import create_app

    url = postgres_server.create_database("corpus", template=kb_template)
    settings = Settings(data_dir=tmp_path_factory.mktemp("corpus-pg") / "data", database_url=url,
                        secret_key="a key every node shares")
    kb = KnowledgeBase.open(settings, corpus_kb.embedder)
    copy_collection(corpus_kb, kb)
    kb.ingest_report = corpus_kb.ingest_report
    app = create_app(settings, {"TESTING": True}, kb=kb)
    yield app
    app.extensions["worker"].stop()  # before the server goes: its worker polls the database
    kb.close()


@pytest.fixture(params=BACKENDS)
def client(request, corpus_app):
    """A test client of the corpus app, on each backend in turn."""
    app = corpus_app if request.param == "sqlite" else request.getfixturevalue("corpus_app_postgres")
    return app.test_client()


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL 18 server with pgvector for the whole run (tests/support/postgres.py):
    127.0.0.1 on a free port, trust auth, run as the `postgres` user when the tests run as root."""
    from support.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL binaries: {error}")
    with server:
        yield server


_postgres_databases = itertools.count(1)


@pytest.fixture(scope="session")
def kb_template(postgres_server) -> str:
    """A database with kb's schema made once (Alembic), copied for every test that needs one."""
    from kb.storage import Store

    Store(postgres_server.create_database("kb_template")).close()
    return "kb_template"


@pytest.fixture
def kb_database(postgres_server, kb_template, request):
    """A fresh PostgreSQL database with kb's schema, for this test alone; its URL."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"kb{next(_postgres_databases)}_{slug}"
    yield postgres_server.create_database(name, template=kb_template)
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh, empty database (vector extension already created) for this test alone; its URL,
    postgresql://postgres@127.0.0.1:PORT/NAME. Dropped afterwards, open connections and all."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t{next(_postgres_databases)}_{slug}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
