"""Literature store, ingestion and hybrid retrieval on the shipped cards (real Postgres, real MiniLM)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oncoboard.domain import TNM, Biomarker, Findings, Tumor, TumorFinding
from oncoboard.knowledge import knowledge_path, load_jsonl
from oncoboard.storage import Database
from tools.literature.chunking import chunk_text, count_tokens, split_sentences
from tools.literature.embed import embed_texts, load_vector_cache, text_key
from tools.literature.fusion import rrf_fuse, rrf_max
from tools.literature.ingest import evidence_level_for, ingest, iter_jsonl, passages
from tools.literature.query import LiteratureQuery, normalise_german, query_from_findings
from tools.literature.retrieve import search_literature
from tools.literature.store import LiteratureDocument, LiteratureStore

CARDS = load_jsonl("literature/cards.jsonl")
CARD_SITE = {c["id"]: c["tumour_type"] for c in CARDS}
EGFR_FIRST_LINE = {"flaura-2018", "flaura2-2023", "mariposa-2024"}


@pytest.fixture(scope="module")
def store(database: Database) -> Iterator[LiteratureStore]:
    """The test database's literature store, seeded once with the shipped cards."""
    literature = LiteratureStore(database)
    literature.ensure_seeded()
    yield literature
    literature.close()


@pytest.fixture
def cleanup(store: LiteratureStore) -> Iterator[list[str]]:
    """Doc ids a test adds; removed afterwards so searches on the shipped cards stay clean."""
    added: list[str] = []
    yield added
    store.delete_documents(added)


# --------------------------------------------------------------------------- pure functions


def test_rrf_fuse_sums_reciprocal_ranks() -> None:
    fused = dict(rrf_fuse([["a", "b", "c"], ["b", "a", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63)
    assert fused["d"] == pytest.approx(1 / 63)
    order = [doc for doc, _ in rrf_fuse([["a", "b", "c"], ["b", "a", "d"]], k=60)]
    assert order == ["a", "b", "c", "d"]  # ties broken by best rank, then id


def test_rrf_fuse_counts_an_item_once_per_ranking_and_handles_empty() -> None:
    assert rrf_fuse([["x", "x", "y"]], k=0) == [("x", 1.0), ("y", pytest.approx(1 / 3))]
    assert rrf_fuse([]) == []
    assert rrf_fuse([[], ["z"]], k=1) == [("z", 0.5)]
    assert rrf_max(2, 10) == pytest.approx(2 / 11)
    with pytest.raises(ValueError):
        rrf_fuse([["a"]], k=-1)


def test_sentence_split_keeps_abbreviations() -> None:
    text = "Osimertinib vs. gefitinib was tested, e.g. in FLAURA. It improved survival! Was it safe? Yes."
    assert split_sentences(text) == [
        "Osimertinib vs. gefitinib was tested, e.g. in FLAURA.",
        "It improved survival!",
        "Was it safe?",
        "Yes.",
    ]


def test_chunks_respect_token_budget_and_keep_every_sentence() -> None:
    sentences = [f"Sentence number {i} describes the trial population and its outcome in detail." for i in range(60)]
    text = " ".join(sentences)
    chunks = chunk_text(text, min_tokens=60, max_tokens=200)
    assert len(chunks) > 3
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(60 <= c.n_tokens <= 300 for c in chunks)
    assert all(c.n_tokens <= 200 for c in chunks[:-1])
    assert " ".join(c.text for c in chunks) == text
    short = chunk_text("One short sentence.")
    assert len(short) == 1 and short[0].n_tokens == count_tokens("One short sentence.")
    with pytest.raises(ValueError):
        chunk_text(text, min_tokens=100, max_tokens=50)


def test_german_terms_are_normalised_to_english() -> None:
    assert normalise_german("Metastasiertes Lungenadenokarzinom mit EGFR Exon-19-Deletion") == (
        "metastatic lung adenocarcinoma with egfr exon 19 deletion"
    )
    assert "hepatocellular carcinoma" in normalise_german("Nicht resezierbares hepatozelluläres Karzinom")
    assert "unresectable" in normalise_german("Nicht resezierbares hepatozelluläres Karzinom")
    assert normalise_german("HER2-positives Mammakarzinom") == "HER2-positive breast cancer"
    # English words the table does not know pass through unchanged.
    assert normalise_german("positive adenocarcinoma") == "positive adenocarcinoma"


def test_publication_types_map_to_evidence_levels() -> None:
    assert evidence_level_for(["Journal Article", "Randomized Controlled Trial"]) == "1B"
    assert evidence_level_for(["Randomized Controlled Trial", "Meta-Analysis"]) == "1A"
    assert evidence_level_for(["Case Reports"]) == "4"
    assert evidence_level_for(["Journal Article"]) is None


# --------------------------------------------------------------------------- shipped cards and seeding


def test_shipped_cards_are_well_formed() -> None:
    assert len(CARDS) >= 150
    ids = [c["id"] for c in CARDS]
    assert len(ids) == len(set(ids))
    parsed = list(iter_jsonl(knowledge_path("literature/cards.jsonl")))
    errors = [(pos, item) for pos, item in parsed if not isinstance(item, LiteratureDocument)]
    assert errors == []
    assert {c["tumour_type"] for c in CARDS} >= {
        "lung", "breast", "colorectal", "liver", "esophagus", "stomach", "pancreas", "prostate"
    }  # fmt: skip
    assert all("pmid" not in c and "doi" not in c for c in CARDS)
    assert sum(c["source"] == "guideline" for c in CARDS) >= 8 * 3


def test_vector_cache_matches_the_model() -> None:
    cache = load_vector_cache(knowledge_path("literature/cards.vectors.npz"))
    texts = [
        chunk.text
        for _pos, doc in list(iter_jsonl(knowledge_path("literature/cards.jsonl")))[:2]
        if isinstance(doc, LiteratureDocument)
        for chunk in passages(doc)
    ]
    fresh = embed_texts(texts)
    cached = np.vstack([cache[text_key(t)] for t in texts])
    assert np.allclose(np.sum(fresh * cached, axis=1), 1.0, atol=1e-3)


def test_seeding_loads_every_card_once_and_is_cheap_afterwards(store: LiteratureStore) -> None:
    stats = store.stats()
    assert stats["documents"] >= len(CARDS)
    assert stats["chunks"] >= stats["documents"]
    assert sum(stats["by_level"].values()) == stats["documents"]
    assert sum(stats["by_year"].values()) == stats["documents"]
    assert stats["by_tumour_type"]["lung"] == sum(1 for c in CARDS if c["tumour_type"] == "lung")
    fresh = LiteratureStore(store.db)
    started = time.perf_counter()
    assert fresh.ensure_seeded() is False
    assert fresh.ensure_seeded() is False
    assert time.perf_counter() - started < 0.5
    fresh.close()


# --------------------------------------------------------------------------- ingestion


def _write_jsonl(path: Path, records: list[object], header: bool = True) -> None:
    lines = [json.dumps({"source": "test corpus", "edition": "1"})] if header else []
    lines += [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _card(doc_id: str, title: str, result: str) -> dict[str, object]:
    return {
        "id": doc_id,
        "title": title,
        "year": 2021,
        "tumour_type": "other",
        "evidence_level": "2B",
        "population": "Adults with a rare test tumour called zebracarcinoma.",
        "intervention": "Drug zebranib.",
        "result": result,
        "source": "trial",
    }


def test_jsonl_ingestion_is_idempotent_deduplicates_and_reports_bad_lines(
    store: LiteratureStore, tmp_path: Path, cleanup: list[str]
) -> None:
    path = tmp_path / "corpus.jsonl"
    records: list[object] = [
        _card("t-zebra-1", "Zebranib in zebracarcinoma: first trial", "Responses were seen."),
        _card("t-zebra-2", "Zebranib in zebracarcinoma: second trial", "Disease control was durable."),
        _card("t-zebra-3", "Zebranib In Zebracarcinoma - First Trial!", "Same publication, other id."),
        "{not json",
        {"id": "t-zebra-4", "year": 2020, "result": "no title"},
        {**_card("t-zebra-5", "Zebranib at an unknown site", "x"), "tumour_type": "ovary"},
    ]
    _write_jsonl(path, records)
    cleanup.extend(["t-zebra-1", "t-zebra-2", "t-zebra-3"])

    first = ingest(store, path, register=False)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert first.duplicates == [{"line": 4, "id": "t-zebra-3", "duplicate_of": "t-zebra-1", "on": "title"}]
    assert [e["line"] for e in first.errors] == [5, 6, 7]
    assert "invalid JSON" in first.errors[0]["error"]
    assert "title" in first.errors[1]["error"]
    assert "ovary" in first.errors[2]["error"]

    again = ingest(store, path, register=False)
    assert (again.inserted, again.updated, again.unchanged, again.chunks) == (0, 0, 2, 0)

    records[1] = _card("t-zebra-2", "Zebranib in zebracarcinoma: second trial", "Disease control was durable and safe.")
    _write_jsonl(path, records)
    changed = ingest(store, path, register=False)
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 1)

    hits = search_literature(store, LiteratureQuery(text="zebranib zebracarcinoma", site="other"), k=5)
    assert {h.id for h in hits} == {"t-zebra-1", "t-zebra-2"}


MEDLINE = """<?xml version="1.0" encoding="UTF-8"?>
<PubmedArticleSet>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE">
      <PMID Version="1">90000001</PMID>
      <Article>
        <Journal><JournalIssue>
          <PubDate><Year>2022</Year><Month>Mar</Month></PubDate>
        </JournalIssue></Journal>
        <ArticleTitle>Quokkamab versus placebo in <i>EGFR</i>-mutant lung quokkoma:
          a randomised trial</ArticleTitle>
        <Abstract>
          <AbstractText Label="BACKGROUND">Quokkoma is a fictional lung tumour.</AbstractText>
          <AbstractText Label="RESULTS">Quokkamab prolonged progression-free survival.</AbstractText>
        </Abstract>
        <Language>eng</Language>
        <ELocationID EIdType="doi" ValidYN="Y">10.0000/oncoboard.test.1</ELocationID>
        <PublicationTypeList>
          <PublicationType UI="D016428">Journal Article</PublicationType>
          <PublicationType UI="D016449">Randomized Controlled Trial</PublicationType>
        </PublicationTypeList>
      </Article>
      <MeshHeadingList>
        <MeshHeading><DescriptorName UI="D008175">Lung Neoplasms</DescriptorName></MeshHeading>
        <MeshHeading><DescriptorName UI="D058990">Molecular Targeted Therapy</DescriptorName></MeshHeading>
      </MeshHeadingList>
    </MedlineCitation>
  </PubmedArticle>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE">
      <PMID Version="1">90000002</PMID>
      <Article>
        <Journal><JournalIssue>
          <PubDate><MedlineDate>2019 Nov-Dec</MedlineDate></PubDate>
        </JournalIssue></Journal>
        <Abstract><AbstractText>An abstract whose article has no title.</AbstractText></Abstract>
      </Article>
    </MedlineCitation>
  </PubmedArticle>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE">
      <PMID Version="1">90000001</PMID>
      <Article>
        <ArticleTitle>The same record delivered twice</ArticleTitle>
        <Abstract><AbstractText>Duplicate by PMID.</AbstractText></Abstract>
      </Article>
    </MedlineCitation>
  </PubmedArticle>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE">
      <PMID Version="1">90000003</PMID>
      <Article>
        <Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue></Journal>
        <ArticleTitle>Quokkamab trials pooled: a meta-analysis</ArticleTitle>
        <Abstract><AbstractText>Pooled analysis in quokkoma.</AbstractText></Abstract>
        <PublicationTypeList><PublicationType>Meta-Analysis</PublicationType></PublicationTypeList>
      </Article>
      <MeshHeadingList>
        <MeshHeading><DescriptorName>Carcinoma, Non-Small-Cell Lung</DescriptorName></MeshHeading>
      </MeshHeadingList>
    </MedlineCitation>
  </PubmedArticle>
</PubmedArticleSet>
"""


def test_medline_ingestion_maps_metadata_and_reports_bad_articles(
    store: LiteratureStore, tmp_path: Path, cleanup: list[str]
) -> None:
    path = tmp_path / "pubmed.xml"
    path.write_text(MEDLINE, encoding="utf-8")
    cleanup.extend(["pmid-90000001", "pmid-90000003"])
    summary = ingest(store, path, register=False)
    assert (summary.read, summary.inserted) == (3, 2)
    assert summary.errors == [{"article": 2, "error": "PMID 90000002: ArticleTitle is missing"}]
    assert summary.duplicates == [{"article": 3, "id": "pmid-90000001", "duplicate_of": "pmid-90000001", "on": "id"}]
    meta = store.document_meta(["pmid-90000001", "pmid-90000003"])
    rct, meta_analysis = meta["pmid-90000001"], meta["pmid-90000003"]
    assert (rct.year, rct.evidence_level, rct.tumour_type) == (2022, "1B", "lung")
    assert rct.modalities == ("targeted",)
    assert "EGFR" in rct.biomarkers
    assert rct.title.startswith("Quokkamab versus placebo in EGFR-mutant")
    assert (meta_analysis.year, meta_analysis.evidence_level) == (2020, "1A")
    assert ingest(store, path, register=False).unchanged == 2

    hits = search_literature(store, LiteratureQuery(text="quokkamab quokkoma", site="lung"), k=3)
    assert hits and hits[0].id in {"pmid-90000001", "pmid-90000003"}


def test_broken_xml_keeps_the_articles_before_the_break(
    store: LiteratureStore, tmp_path: Path, cleanup: list[str]
) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(MEDLINE[: MEDLINE.index("<PubmedArticle>", 200)] + "<PubmedArticle><Medline", encoding="utf-8")
    cleanup.append("pmid-90000001")
    summary = ingest(store, path, register=False)
    assert (summary.read, summary.inserted) == (1, 1)
    assert len(summary.errors) == 1 and summary.errors[0]["article"] == 0
    assert "line " in summary.errors[0]["error"] and "after article 1" in summary.errors[0]["error"]


# --------------------------------------------------------------------------- retrieval


def _egfr_case(lang_result: str = "exon 19 deletion") -> tuple[Findings, list[Tumor]]:
    findings = Findings(
        oncology=True,
        tumors=(TumorFinding(site="lung", histology="adenocarcinoma", metastases=("brain",)),),
        biomarkers=(
            Biomarker(name="EGFR", result=lang_result, status="positive"),
            Biomarker(name="ALK", result="negative", status="negative"),
        ),
        ecog=1,
    )
    tumor = Tumor(
        site="lung",
        histology="adenocarcinoma",
        tnm=TNM(prefix="c", t="T2a", n="N1", m="M1b", stage_group="IVA"),
    )
    return findings, [tumor]


def test_egfr_mutant_lung_case_finds_flaura_type_evidence_first(store: LiteratureStore) -> None:
    findings, tumors = _egfr_case()
    query = query_from_findings(findings, tumors)
    assert query.site == "lung"
    assert "egfr exon 19 deletion" in query.text.lower()
    assert "metastatic" in query.text
    hits = search_literature(store, query, k=5, now_year=2026)
    assert len(hits) == 5
    assert hits[0].id in EGFR_FIRST_LINE
    assert len({h.id for h in hits}) == len(hits)  # one hit per document
    assert all(CARD_SITE.get(h.id) == "lung" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    expected = {"bm25_rank", "dense_rank", "rrf", "semantic", "recency", "level_weight", "final"}
    assert expected <= set(hits[0].explanation)
    assert hits[0].explanation["final"] == pytest.approx(hits[0].score, abs=1e-5)


def test_german_case_finds_english_cards(store: LiteratureStore) -> None:
    query = LiteratureQuery(
        text="Metastasiertes Lungenadenokarzinom mit EGFR Exon-19-Deletion, Erstlinientherapie",
        site="lung",
        language="de",
    )
    hits = search_literature(store, query, k=3, now_year=2026)
    assert hits and hits[0].id in EGFR_FIRST_LINE
    german_findings, tumors = _egfr_case(lang_result="Exon-19-Deletion")
    assert "exon 19 deletion" in query_from_findings(german_findings, tumors).text


def test_postings_bm25_equals_rank_bm25_on_the_store(store: LiteratureStore) -> None:
    from rank_bm25 import BM25Okapi

    from tools.literature.retrieve import lexical_index, tokenize

    index = lexical_index(store)
    with store.snapshot() as snap:
        passages = list(snap.passages())
        assert snap.generation() == index.generation
    assert index.n_passages == len(passages) > 0
    reference = BM25Okapi([tokenize(text) for _doc, text in passages])
    tokens = tokenize("EGFR exon 19 deletion osimertinib metastatic metastatic zzzunknown")
    assert np.allclose(index.scores(tokens), reference.get_scores(tokens), rtol=1e-12, atol=0)
    assert index.scores(["zzzunknown"]).max() == 0
    assert index.passage_doc_ids(np.arange(len(passages))) == [doc for doc, _text in passages]


def _row(doc_id: str, site: str, year: int | None, level: str | None, settings: tuple[str, ...] = ()) -> object:
    from tools.literature.lexical import DocumentFilterRow

    return DocumentFilterRow(doc_id, site, year, level, settings)


def test_postings_bm25_floors_negative_idf_like_rank_bm25() -> None:
    from rank_bm25 import BM25Okapi

    from tools.literature.lexical import build_lexical_index, tokenize

    texts = [
        "nivolumab adjuvant melanoma",
        "nivolumab metastatic melanoma",
        "nivolumab ipilimumab melanoma melanoma",
        "pembrolizumab adjuvant",
        "",
    ]
    index = build_lexical_index(((f"d{i}", t) for i, t in enumerate(texts)), [])
    reference = BM25Okapi([tokenize(t) for t in texts])
    assert reference.idf["nivolumab"] == pytest.approx(0.25 * reference.average_idf)  # floored
    for query in (["nivolumab"], ["melanoma", "adjuvant"], ["pembrolizumab", "pembrolizumab"]):
        assert np.allclose(index.scores(query), reference.get_scores(query), rtol=1e-12, atol=0)
    empty = build_lexical_index([], [])
    assert empty.n_passages == 0 and empty.scores(["x"]).shape == (0,)


def test_top_passages_match_a_full_stable_sort_with_filters_and_ties() -> None:
    from tools.literature.lexical import Filters, build_lexical_index, tokenize

    # Identical passages tie exactly; the limit cuts through the tie, which must resolve by passage order.
    rows = [
        ("a", "osimertinib egfr lung", "lung", 2018, "1B", ("first_line",)),
        ("b", "osimertinib egfr lung", "lung", 2023, "1B", ("adjuvant",)),
        ("c", "osimertinib egfr lung", "lung", None, "2B", ("first_line",)),
        ("d", "osimertinib egfr egfr lung", "breast", 2020, "1A", ("first_line",)),
        ("e", "egfr", "lung", 2024, None, ()),
        ("f", "osimertinib egfr lung", "lung", 2021, "1B", ("first_line",)),
        ("g", "unrelated trastuzumab", "lung", 2021, "1B", ("first_line",)),
    ]
    # Passages without the query terms keep their idf positive, as in a real corpus.
    rows += [(f"z{i}", f"cisplatin filler{i}", "other", 2020, "2A", ()) for i in range(12)]
    docs = [_row(doc, site, year, level, settings) for doc, _t, site, year, level, settings in rows]
    index = build_lexical_index(((doc, text) for doc, text, *_ in rows), docs)
    tokens = tokenize("osimertinib EGFR")
    scores = index.scores(tokens)

    def reference(allowed: set[str], limit: int) -> list[str]:
        order = np.argsort(-scores, kind="stable")
        return [rows[i][0] for i in order if scores[i] > 0 and rows[i][0] in allowed][:limit]

    lung = {"a", "b", "c", "e", "f", "g"}
    assert (scores[:6] > 0).all()
    for limit in (1, 2, 3, 5, 10):
        got = index.passage_doc_ids(index.top_passages(tokens, Filters(), limit))
        assert got == reference({r[0] for r in rows}, limit)
        got = index.passage_doc_ids(index.top_passages(tokens, Filters(site="lung"), limit))
        assert got == reference(lung, limit)
    assert index.passage_doc_ids(index.top_passages(tokens, Filters(site="lung"), 2)) == ["a", "b"]
    by_year = index.top_passages(tokens, Filters(site="lung", min_year=2021), 10)
    assert index.passage_doc_ids(by_year) == ["b", "f", "e"]  # the undated card never passes a date filter
    by_level = index.top_passages(tokens, Filters(levels=("1A", "2B", "9")), 10)
    assert index.passage_doc_ids(by_level) == ["d", "c"]
    by_setting = index.top_passages(tokens, Filters(site="lung", settings=("adjuvant", "unknown")), 10)
    assert index.passage_doc_ids(by_setting) == ["b"]
    assert len(index.top_passages(tokens, Filters(site="pancreas"), 10)) == 0
    assert len(index.top_passages([], Filters(), 10)) == 0
    assert len(index.top_passages(tokens, Filters(), 0)) == 0


def test_lexical_index_follows_store_writes_and_snapshot_streams_in_order(
    store: LiteratureStore, cleanup: list[str]
) -> None:
    from tools.literature.retrieve import bm25_ranking, lexical_index, warm_up

    report = warm_up(store)
    before = lexical_index(store)
    assert report["passages"] == before.n_passages > 0
    assert lexical_index(store) is before  # cached while nothing is written
    doc = LiteratureDocument(
        doc_id="test-zolbetuximab-rare",
        title="Zolbetuximab claudin test card",
        text="Zolbetuximabquux with chemotherapy in claudin-positive gastric cancer.",
        source="user",
        origin="test",
        year=2024,
        tumour_type="stomach",
        evidence_level="1B",
    )
    vector = embed_texts([doc.text])
    store.write_documents([(doc, passages(doc), vector)])
    cleanup.append(doc.doc_id)
    query = LiteratureQuery(text="zolbetuximabquux", site="stomach")
    assert bm25_ranking(store, query, query.text, 10) == [doc.doc_id]
    assert lexical_index(store).generation > before.generation
    assert bm25_ranking(store, LiteratureQuery(text="zolbetuximabquux", site="lung"), "zolbetuximabquux", 10) == []
    with store.snapshot() as snap:
        rows = store.all_passages()
        assert [doc_id for doc_id, _text in snap.passages()] == [r["doc_id"] for r in rows]
        assert sum(1 for r in snap.filter_rows() if r.doc_id == doc.doc_id) == 1


def test_passage_vectors_and_dense_search_session_settings(store: LiteratureStore) -> None:
    ids = ["flaura-2018", "mariposa-2024"]
    vectors = store.passage_vectors(ids)
    assert set(vectors) == set(ids)
    assert all(v.dtype == np.float32 and v.shape[1] == 384 for v in vectors.values())
    assert all(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4) for v in vectors.values())
    joined, meta = store.candidates([*ids, "no-such-doc"])
    assert set(joined) == set(meta) == set(ids)
    assert all(np.array_equal(joined[d], vectors[d]) for d in ids)
    assert meta == store.document_meta(ids)
    assert store.candidates([]) == ({}, {})
    query = vectors["flaura-2018"][0]
    exact = store.dense_search(query, 5, site="lung", ef_search=200)
    assert exact[0][1] == "flaura-2018" and exact[0][2] == pytest.approx(1.0, abs=1e-5)
    assert all(CARD_SITE[doc] == "lung" for _chunk, doc, _sim in exact)
    narrow = store.dense_search(query, 5, site="lung", ef_search=40)
    assert [r[1] for r in narrow] == [r[1] for r in exact]  # 237 cards: the graph search is exact
    shown = store._query("SELECT current_setting('hnsw.ef_search') AS ef, current_setting('hnsw.iterative_scan') AS it")
    assert shown == [{"ef": "40", "it": "relaxed_order"}]


def test_site_filter_and_recency_window(store: LiteratureStore) -> None:
    query = LiteratureQuery(text="HER2-positive metastatic first-line", site="stomach")
    hits = search_literature(store, query, k=5, now_year=2026)
    assert hits and all(CARD_SITE[h.id] == "stomach" for h in hits)
    recent = search_literature(store, query, k=20, recency_years=3, now_year=2026)
    assert all(h.explanation["recency"] > 1.0 for h in recent if h.year is not None and h.year >= 2024)
    assert all(h.explanation["recency"] == 1.0 for h in recent if h.year is not None and h.year < 2024)
    no_recency = search_literature(store, query, k=20, recency_years=0, now_year=2026)
    assert all(h.explanation["recency"] == 1.0 for h in no_recency)
    assert search_literature(store, query, k=0) == []


def test_retrieval_evaluation_reports_every_system(store: LiteratureStore) -> None:
    from evaluation.retrieval_eval import evaluate_retrieval, load_queries

    queries = load_queries()
    assert len(queries) >= 60 and sum(q.lang == "de" for q in queries) >= 20
    assert all(CARD_SITE[r] == q.site for q in queries for r in q.relevant)
    sample = [q for q in queries if q.id in {"en-lung-egfr-1l", "de-lung-egfr-1l", "en-panc-brca"}]
    report = evaluate_retrieval(store, queries=sample, now_year=2026)
    assert set(report["systems"]) == {"bm25", "dense", "hybrid", "hybrid_recency"}
    hybrid = report["systems"]["hybrid"]
    assert hybrid["en"]["n"] == 2 and hybrid["de"]["n"] == 1
    assert hybrid["all"]["mrr"] > 0.5


def test_cli_stats_and_bad_input(database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.cli_literature import app
    from oncoboard.config import get_settings

    monkeypatch.setenv("ONCOBOARD_DATABASE_URL", database.url)
    monkeypatch.setenv("ONCOBOARD_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["stats", "--json"])
        assert result.exit_code == 0, result.output
        stats = json.loads(result.stdout)
        assert stats["documents"] >= len(CARDS) and "by_year" in stats and "by_level" in stats
        missing = runner.invoke(app, ["ingest", str(tmp_path / "nope.jsonl")])
        assert missing.exit_code == 2
    finally:
        get_settings.cache_clear()


def test_onnx_query_encoder_matches_pytorch_and_is_cached(tmp_path: Path) -> None:
    from tools.literature.embed import MAX_ENCODER_DRIFT, QueryEncoder, embed_texts

    encoder = QueryEncoder(tmp_path)
    exported = tmp_path / "all-MiniLM-L6-v2.onnx"
    assert exported.is_file()
    stamp = exported.stat().st_mtime_ns
    for text in ("KRAS G12C NSCLC second line sotorasib", "Rektumkarzinom neoadjuvant total neoadjuvant therapy"):
        vector = encoder.encode(text)
        assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        assert float(np.abs(vector - embed_texts([text])[0]).max()) <= MAX_ENCODER_DRIFT
    QueryEncoder(tmp_path)  # a second process start reuses the exported graph
    assert exported.stat().st_mtime_ns == stamp
