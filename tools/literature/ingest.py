"""Ingestion of evidence into the literature store: JSONL cards and PubMed/MEDLINE XML.

Ingestion is idempotent (a record whose content hash is already stored is skipped), de-duplicates
by PMID, DOI and normalised title, and never fails a whole file for one bad record: malformed
records are reported with their position (JSONL line number, MEDLINE article index) and the rest
is ingested.

``update()`` re-reads the shipped cards and every registered source whose file changed. A nightly
refresh can be scheduled with cron, for example::

    15 2 * * *  cd /srv/oncoboard && .venv/bin/oncoboard literature update >> /var/log/oncoboard-lit.log 2>&1
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from oncoboard.domain import Site
from oncoboard.knowledge import knowledge_path, load_table

from .chunking import Chunk, chunk_text
from .embed import embed_with_cache, load_vector_cache, save_vector_cache
from .store import SHIPPED_CARDS, SHIPPED_SOURCE_KEY, LiteratureDocument, LiteratureStore, normalise_title

SHIPPED_VECTORS = "literature/cards.vectors.npz"

logger = logging.getLogger(__name__)

SITES: frozenset[str] = frozenset(get_args(Site))
EVIDENCE_LEVELS: frozenset[str] = frozenset({"1A", "1B", "2A", "2B", "3", "4"})
_BATCH = 256
_LANGUAGES = {"eng": "en", "ger": "de", "deu": "de"}


class IngestError(ValueError):
    """A source that cannot be ingested at all (missing file, unknown format)."""


@dataclass
class IngestSummary:
    """What one ingestion run did."""

    source: str
    kind: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON types."""
        return {
            "source": self.source,
            "kind": self.kind,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }


class RecordError(ValueError):
    """One record is malformed; the message says why."""


# --------------------------------------------------------------------------- record parsing


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RecordError(f"'{name}' must be a string or a list of strings")


def _year(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RecordError("'year' must be an integer")
    try:
        year = int(value)
    except ValueError as exc:
        raise RecordError(f"'year' is not a year: {value!r}") from exc
    if not 1900 <= year <= 2100:
        raise RecordError(f"'year' out of range: {year}")
    return year


def card_text(record: dict[str, Any]) -> str:
    """The passage text of a card: its descriptive fields as sentences, then its feature terms."""
    parts: list[str] = [str(record["title"]).rstrip(".") + "."]
    trial = record.get("trial")
    if trial:
        parts.append(f"{trial} ({record.get('year', 'n.d.')}).")
    for key, label in (
        ("population", "Population"),
        ("intervention", "Intervention"),
        ("comparator", "Comparator"),
        ("result", "Result"),
        ("text", ""),
        ("abstract", ""),
    ):
        value = record.get(key)
        if value:
            sentence = str(value).strip()
            parts.append(f"{label}: {sentence}" if label else sentence)
    features: list[str] = []
    for key, label in (
        ("setting", "Setting"),
        ("modality", "Modality"),
        ("biomarkers", "Biomarkers"),
        ("drugs", "Drugs"),
        ("tags", "Keywords"),
    ):
        values = _str_list(record.get(key), key)
        if values:
            features.append(f"{label}: {', '.join(v.replace('_', ' ') for v in values)}.")
    text = " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)
    return (text + " " + " ".join(features)).strip()


def document_from_record(record: Any, origin: str) -> LiteratureDocument:
    """Validate one JSONL record (an evidence card or a user abstract) into a document."""
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        raise RecordError("'title' is missing or empty")
    site = record.get("tumour_type", record.get("tumor_type", "other")) or "other"
    if site not in SITES:
        raise RecordError(f"'tumour_type' {site!r} is not a known site")
    level = record.get("evidence_level")
    if level is not None and level not in EVIDENCE_LEVELS:
        raise RecordError(f"'evidence_level' {level!r} is not one of {sorted(EVIDENCE_LEVELS)}")
    if not any(record.get(k) for k in ("population", "intervention", "result", "text", "abstract")):
        raise RecordError("record has no content (population/intervention/result/text/abstract)")
    pmid = str(record["pmid"]).strip() if record.get("pmid") else None
    if pmid is not None and not pmid.isdigit():
        raise RecordError(f"'pmid' must be digits: {pmid!r}")
    doi = str(record["doi"]).strip() if record.get("doi") else None
    doc_id = record.get("id")
    if doc_id is not None and (not isinstance(doc_id, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,120}", doc_id)):
        raise RecordError("'id' must be a slug of letters, digits and . _ : -")
    if not doc_id:
        title_key = hashlib.sha256(normalise_title(title).encode()).hexdigest()[:16]
        doc_id = f"pmid-{pmid}" if pmid else f"doc-{title_key}"
    body = {k: v for k, v in record.items() if k not in {"id"}}
    return LiteratureDocument(
        doc_id=doc_id,
        title=title.strip(),
        text=card_text(record),
        source=str(record.get("source") or "user"),
        origin=origin,
        year=_year(record.get("year")),
        tumour_type=site,
        modalities=_str_list(record.get("modality"), "modality"),
        settings=_str_list(record.get("setting"), "setting"),
        biomarkers=_str_list(record.get("biomarkers"), "biomarkers"),
        drugs=_str_list(record.get("drugs"), "drugs"),
        population_tags=_str_list(record.get("population_tags"), "population_tags"),
        tags=_str_list(record.get("tags"), "tags"),
        evidence_level=level,
        trial=record.get("trial") or None,
        language=str(record.get("language") or "en"),
        pmid=pmid,
        doi=doi,
        body=body,
    )


def iter_jsonl(path: Path) -> Iterator[tuple[int, LiteratureDocument | RecordError]]:
    """``(line_number, document or error)`` for each non-blank line; a header line is skipped."""
    origin = str(path)
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, RecordError(f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            is_header = isinstance(record, dict) and {"source", "edition"} <= record.keys() and "title" not in record
            if line_no == 1 and is_header:
                continue
            try:
                yield line_no, document_from_record(record, origin)
            except RecordError as exc:
                yield line_no, exc


# --------------------------------------------------------------------------- MEDLINE


@dataclass(frozen=True)
class _MedlineMap:
    levels: list[tuple[str, str]]
    level_order: list[str]
    sites: dict[str, str]
    modalities: dict[str, str]
    settings: dict[str, str]
    biomarkers: dict[str, list[str]]


def _medline_map() -> _MedlineMap:
    table = load_table("literature/medline_map.yaml")
    return _MedlineMap(
        levels=[(row["type"], row["level"]) for row in table["publication_type_levels"]],
        level_order=list(table["level_order"]),
        sites=dict(table["mesh_sites"]),
        modalities=dict(table["mesh_modalities"]),
        settings=dict(table["mesh_settings"]),
        biomarkers={k: list(v) for k, v in table["biomarker_terms"].items()},
    )


def evidence_level_for(publication_types: list[str], mapping: _MedlineMap | None = None) -> str | None:
    """The highest evidence level any publication type reaches (``None`` when none is known)."""
    mapping = mapping or _medline_map()
    by_type = dict(mapping.levels)
    found = [by_type[t] for t in publication_types if t in by_type]
    if not found:
        return None
    return min(found, key=mapping.level_order.index)


def _text(element: ET.Element | None) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip() if element is not None else ""


def _medline_year(article: ET.Element) -> int | None:
    pub_date = article.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
    candidates = []
    if pub_date is not None:
        candidates = [_text(pub_date.find("Year")), _text(pub_date.find("MedlineDate"))]
    candidates.append(_text(article.find("MedlineCitation/Article/ArticleDate/Year")))
    for value in candidates:
        match = re.search(r"\b(19|20)\d{2}\b", value)
        if match:
            return int(match.group(0))
    return None


def document_from_medline(article: ET.Element, origin: str, mapping: _MedlineMap) -> LiteratureDocument:
    """One ``PubmedArticle`` element as a document; evidence level, site and modality from its MeSH."""
    citation = article.find("MedlineCitation")
    if citation is None:
        raise RecordError("no MedlineCitation")
    pmid = _text(citation.find("PMID"))
    if not pmid.isdigit():
        raise RecordError("PMID is missing or not numeric")
    title = _text(citation.find("Article/ArticleTitle"))
    if not title:
        raise RecordError(f"PMID {pmid}: ArticleTitle is missing")
    sections = []
    for node in citation.findall("Article/Abstract/AbstractText"):
        label = node.get("Label")
        body = _text(node)
        if body:
            sections.append(f"{label.capitalize()}: {body}" if label else body)
    abstract = " ".join(sections)
    mesh = [_text(d) for d in citation.findall("MeshHeadingList/MeshHeading/DescriptorName")]
    pub_types = [_text(p) for p in citation.findall("Article/PublicationTypeList/PublicationType")]
    doi = None
    for node in citation.findall("Article/ELocationID"):
        if node.get("EIdType") == "doi":
            doi = _text(node)
    for node in article.findall("PubmedData/ArticleIdList/ArticleId"):
        if node.get("IdType") == "doi" and not doi:
            doi = _text(node)
    language = _LANGUAGES.get(_text(citation.find("Article/Language")).lower(), "en")
    site = next((mapping.sites[m] for m in mesh if m in mapping.sites), "other")
    modalities = tuple(dict.fromkeys(mapping.modalities[m] for m in mesh if m in mapping.modalities))
    settings = tuple(dict.fromkeys(mapping.settings[m] for m in mesh if m in mapping.settings))
    haystack = f"{title} {abstract}"
    biomarkers = tuple(
        name
        for name, terms in mapping.biomarkers.items()
        if any(re.search(rf"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])", haystack) for t in terms)
    )
    year = _medline_year(article)
    record: dict[str, Any] = {
        "title": title,
        "abstract": abstract,
        "year": year,
        "mesh": mesh,
        "publication_types": pub_types,
    }
    return LiteratureDocument(
        doc_id=f"pmid-{pmid}",
        title=title,
        text=f"{title}. {abstract}".strip(),
        source="pubmed",
        origin=origin,
        year=year,
        tumour_type=site,
        modalities=modalities,
        settings=settings,
        biomarkers=biomarkers,
        tags=tuple(mesh),
        evidence_level=evidence_level_for(pub_types, mapping),
        language=language,
        pmid=pmid,
        doi=doi,
        body=record,
    )


def iter_medline(path: Path) -> Iterator[tuple[int, LiteratureDocument | RecordError]]:
    """``(article_index, document or error)`` per ``PubmedArticle`` (1-based); a broken file stops
    with an error at index 0 that names the line and column where parsing failed."""
    mapping = _medline_map()
    origin = str(path)
    index = 0
    try:
        for _event, element in ET.iterparse(path, events=("end",)):
            if element.tag != "PubmedArticle":
                continue
            index += 1
            try:
                yield index, document_from_medline(element, origin, mapping)
            except RecordError as exc:
                yield index, exc
            element.clear()
    except ET.ParseError as exc:
        line, column = exc.position
        yield (
            0,
            RecordError(f"XML is not well-formed at line {line}, column {column} (after article {index})"),
        )


# --------------------------------------------------------------------------- the run


def detect_kind(path: Path) -> str:
    """``jsonl`` or ``medline`` from the file's name and first bytes."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix == ".xml":
        return "medline"
    head = path.read_bytes()[:512].lstrip()
    if head.startswith(b"<"):
        return "medline"
    if head.startswith(b"{"):
        return "jsonl"
    raise IngestError(f"{path}: cannot tell whether this is JSONL or MEDLINE XML")


def passages(doc: LiteratureDocument) -> list[Chunk]:
    """The passages of a document as stored and embedded."""
    # The title leads every passage so a chunk from the middle of an abstract keeps its context.
    return [
        c if c.seq == 0 else Chunk(seq=c.seq, text=f"{doc.title}. {c.text}", n_tokens=c.n_tokens)
        for c in chunk_text(doc.text)
    ]


def _embed_and_write(
    store: LiteratureStore,
    pending: list[LiteratureDocument],
    summary: IngestSummary,
    cache: dict[str, np.ndarray] | None,
) -> None:
    if not pending:
        return
    chunked = [(doc, passages(doc)) for doc in pending]
    vectors = embed_with_cache([c.text for _doc, chunks in chunked for c in chunks], cache)
    items: list[tuple[LiteratureDocument, list[Chunk], np.ndarray]] = []
    offset = 0
    for doc, chunks in chunked:
        items.append((doc, chunks, vectors[offset : offset + len(chunks)]))
        offset += len(chunks)
        summary.chunks += len(chunks)
    store.write_documents(items)


def _run(
    store: LiteratureStore,
    records: Iterator[tuple[int, LiteratureDocument | RecordError]],
    summary: IngestSummary,
    position: str,
    cache: dict[str, np.ndarray] | None = None,
) -> IngestSummary:
    pending: list[LiteratureDocument] = []
    seen_ids: set[str] = set()
    seen_keys: dict[tuple[str, str], str] = {}
    for pos, item in records:
        if isinstance(item, RecordError):
            summary.errors.append({position: pos, "error": str(item)})
            logger.warning("%s %s %s: %s", summary.source, position, pos, item)
            continue
        summary.read += 1
        doc = item
        if doc.doc_id in seen_ids:
            summary.duplicates.append({position: pos, "id": doc.doc_id, "duplicate_of": doc.doc_id, "on": "id"})
            continue
        keys = [
            (k, v) for k, v in (("pmid", doc.pmid), ("doi", (doc.doi or "").lower()), ("title", doc.norm_title)) if v
        ]
        in_batch = next(((k, seen_keys[(k, v)]) for k, v in keys if (k, v) in seen_keys), None)
        if in_batch is not None:
            summary.duplicates.append({position: pos, "id": doc.doc_id, "duplicate_of": in_batch[1], "on": in_batch[0]})
            continue
        stored_hash = store.existing([doc.doc_id]).get(doc.doc_id)
        if stored_hash == doc.content_hash:
            summary.unchanged += 1
        else:
            other = store.duplicate_of(doc)
            if other is not None:
                summary.duplicates.append({position: pos, "id": doc.doc_id, "duplicate_of": other[0], "on": other[1]})
                continue
            if stored_hash is None:
                summary.inserted += 1
            else:
                summary.updated += 1
            pending.append(doc)
        seen_ids.add(doc.doc_id)
        for key in keys:
            seen_keys[key] = doc.doc_id
        if len(pending) >= _BATCH:
            _embed_and_write(store, pending, summary, cache)
            pending = []
    _embed_and_write(store, pending, summary, cache)
    logger.info("ingested %s: %s", summary.source, {k: v for k, v in summary.as_dict().items() if k != "errors"})
    return summary


def ingest(
    store: LiteratureStore,
    path: str | Path,
    *,
    register: bool = True,
    source_key: str | None = None,
    vector_cache: Path | None = None,
) -> IngestSummary:
    """Ingest a JSONL card file or a PubMed/MEDLINE XML file; returns what was done.

    With ``register`` the file is remembered so ``update()`` re-reads it when it changes;
    ``vector_cache`` names an optional ``.npz`` of precomputed passage vectors.
    """
    file = Path(path)
    if not file.is_file():
        raise IngestError(f"no such file: {file}")
    kind = detect_kind(file)
    key = source_key or str(file.resolve())
    summary = IngestSummary(source=key, kind=kind)
    cache = load_vector_cache(vector_cache) if vector_cache else None
    if kind == "jsonl":
        _run(store, iter_jsonl(file), summary, "line", cache)
    else:
        _run(store, iter_medline(file), summary, "article", cache)
    if register:
        store.register_source(key, kind, hashlib.sha256(file.read_bytes()).hexdigest())
    return summary


def ingest_shipped_cards(store: LiteratureStore) -> IngestSummary:
    """Ingest the evidence cards shipped in ``knowledge/literature/cards.jsonl``."""
    return ingest(
        store,
        knowledge_path(SHIPPED_CARDS),
        source_key=SHIPPED_SOURCE_KEY,
        vector_cache=knowledge_path(SHIPPED_VECTORS),
    )


def build_shipped_vectors(path: Path | None = None) -> int:
    """Embed every passage of the shipped cards and write the vector cache; returns the count.

    Run after editing ``cards.jsonl`` (``oncoboard literature vectors``) so seeding a new store
    does not have to embed the cards again.
    """
    texts = [
        chunk.text
        for _pos, item in iter_jsonl(knowledge_path(SHIPPED_CARDS))
        if isinstance(item, LiteratureDocument)
        for chunk in passages(item)
    ]
    target = path or knowledge_path(SHIPPED_VECTORS)
    save_vector_cache(target, texts, embed_with_cache(texts, load_vector_cache(target)))
    return len(texts)


def update(store: LiteratureStore) -> list[IngestSummary]:
    """Re-ingest the shipped cards and every registered source whose content changed since last time.

    Unchanged records inside a changed file are skipped by content hash, so an update costs only
    the embeddings of what is new or edited. A registered file that has disappeared is reported
    as an error in its summary and left in the store.
    """
    summaries: list[IngestSummary] = []
    shipped = knowledge_path(SHIPPED_CARDS)
    if store.source_hash(SHIPPED_SOURCE_KEY) != hashlib.sha256(shipped.read_bytes()).hexdigest():
        summaries.append(ingest_shipped_cards(store))
    for source in store.sources():
        key = source["path"]
        if key == SHIPPED_SOURCE_KEY:
            continue
        file = Path(key)
        if not file.is_file():
            missing = IngestSummary(source=key, kind=source["kind"])
            missing.errors.append({"line": 0, "error": "registered source file no longer exists"})
            summaries.append(missing)
            continue
        if hashlib.sha256(file.read_bytes()).hexdigest() == source["last_sha256"]:
            continue
        summaries.append(ingest(store, file, source_key=key))
    return summaries
