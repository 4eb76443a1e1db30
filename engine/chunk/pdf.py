"""PDF: one `page` chunk per page of extracted text."""

from __future__ import annotations

import io

from ..records import Chunk
from ..settings import IndexSettings
from .base import _cap_pieces


def pdf_pages(data: bytes) -> list[str] | None:
    """Text of each page (pypdf), or None when the bytes are not a readable PDF. Never raises."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                return None
        pages = []
        for page in reader.pages:
            try:
                pages.append((page.extract_text() or "").replace("\x00", ""))
            except Exception:
                pages.append("")
        return pages
    except Exception:
        return None


def _chunk_pdf(path: str, text: str, data: bytes | None, settings: IndexSettings) -> list[Chunk]:
    if data is not None:
        pages = pdf_pages(data)
        if pages is None:
            return []
    else:
        pages = text.split("\f") if text else []
    chunks: list[Chunk] = []
    limit = max(1, settings.max_chunks_per_file)
    for n, page in enumerate(pages, 1):
        body = page.strip()
        if not body:
            continue
        for s, e in _cap_pieces(body, 0, len(body)):
            piece = body[s:e].strip()
            if piece:
                chunks.append(Chunk(path=path, language="pdf", kind="page", symbol=f"page {n}", start_line=1,
                                    end_line=1, text=piece))
            if len(chunks) >= limit:
                return chunks
    return chunks

