"""Knowledge graph: store contract (embedded, Neo4j when configured), build, queries, linking,
the verifier's conflicts with their graph paths, and TransE embeddings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oncoboard.config import Settings
from oncoboard.domain import TNM, Biomarker, Entity, Findings, KGConflict, Scheme, Treatment, Tumor
from tools.kg.build import build_graph, ensure_built
from tools.kg.linking import normalize
from tools.kg.queries import benchmark, drug_indications, one_hop, two_hop
from tools.kg.schema import REL_TYPES, Edge, Node
from tools.kg.store import GraphQueryError, GraphStore, LadybugStore, Neo4jStore, open_graph_store
from tools.kg.transe import TransEModel, graph_triples, train_transe
from tools.kg.verify import graph_index, verify
from tools.kg.wiring import GraphVerifier

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LadybugStore, float]]:
    """One embedded store with the full graph for the whole module, and its build time."""
    store = LadybugStore(tmp_path_factory.mktemp("kg"))
    started = time.perf_counter()
    build_graph(store)
    seconds = time.perf_counter() - started
    yield store, seconds
    store.close()


@pytest.fixture(scope="module")
def kg(built: tuple[LadybugStore, float]) -> LadybugStore:
    """The built store."""
    return built[0]


@pytest.fixture(params=["ladybug", "neo4j"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """Each backend, empty of contract-test nodes; Neo4j only when a server is configured."""
    if request.param == "neo4j":
        if not os.environ.get("NEO4J_URI"):
            pytest.skip("NEO4J_URI not set")
        store: GraphStore = Neo4jStore(
            os.environ["NEO4J_URI"],
            os.environ.get("NEO4J_USER", "neo4j"),
            os.environ.get("NEO4J_PASSWORD", ""),
        )
    else:
        store = LadybugStore(tmp_path / "graph")
    store.bootstrap_schema()
    _drop_contract_nodes(store)
    yield store
    _drop_contract_nodes(store)
    store.close()


def _drop_contract_nodes(store: GraphStore) -> None:
    # Only this suite's nodes: a configured Neo4j may hold a real graph.
    for label in ("Drug", "Biomarker", "Disease", "DrugClass"):
        store.query(f"MATCH (n:{label}) WHERE n.id STARTS WITH 'contract-' DETACH DELETE n")


def _contract_graph() -> tuple[list[Node], list[Edge]]:
    nodes = [
        Node("Drug", "contract-drug", "contract drug", "antineoplastic", "", ("Kontrakt",), "test"),
        Node("Biomarker", "contract-gene", "contract gene", "gene"),
        Node("Disease", "contract-C99", "contract disease", "category", "C99"),
        Node("DrugClass", "contract-class", "contract class", "class"),
    ]
    edges = [
        Edge("TARGETS", "Drug", "contract-drug", "Biomarker", "contract-gene", (("source", "test"),)),
        Edge("IN_CLASS", "Drug", "contract-drug", "DrugClass", "contract-class"),
        Edge(
            "INDICATED_FOR",
            "Drug",
            "contract-drug",
            "Disease",
            "contract-C99",
            (("setting", "adjuvant"), ("line", "any")),
        ),
        Edge(
            "INDICATED_FOR",
            "Drug",
            "contract-drug",
            "Disease",
            "contract-C99",
            (("setting", "advanced"), ("line", "first")),
        ),
    ]
    return nodes, edges


def _count(stats: dict, kind: str, name: str) -> int:
    return int(stats[kind].get(name, 0))


# --------------------------------------------------------------------------- store contract


def test_contract_load_is_idempotent_and_counted(backend: GraphStore) -> None:
    before = backend.stats()
    nodes, edges = _contract_graph()
    backend.load(nodes, edges)
    backend.load(nodes, edges)  # MERGE: a second load adds nothing
    backend.bootstrap_schema()  # idempotent
    after = backend.stats()
    assert _count(after, "nodes", "Drug") - _count(before, "nodes", "Drug") == 1
    assert _count(after, "nodes", "Biomarker") - _count(before, "nodes", "Biomarker") == 1
    assert _count(after, "edges", "TARGETS") - _count(before, "edges", "TARGETS") == 1
    # parallel indications with different settings are distinct edges
    assert _count(after, "edges", "INDICATED_FOR") - _count(before, "edges", "INDICATED_FOR") == 2
    assert after["total_nodes"] - before["total_nodes"] == 4


def test_contract_query_returns_rows_with_properties(backend: GraphStore) -> None:
    backend.load(*_contract_graph())
    rows = backend.query(
        "MATCH (d:Drug {id: $id})-[e:INDICATED_FOR]->(x:Disease) "
        "RETURN x.code AS code, e.setting AS setting, d.synonyms AS synonyms ORDER BY setting",
        {"id": "contract-drug"},
    )
    assert rows == [
        {"code": "C99", "setting": "adjuvant", "synonyms": ["Kontrakt"]},
        {"code": "C99", "setting": "advanced", "synonyms": ["Kontrakt"]},
    ]
    assert backend.query("MATCH (d:Drug {id: 'contract-none'}) RETURN d.id AS id") == []


def test_contract_bad_cypher_raises_typed_error(backend: GraphStore) -> None:
    with pytest.raises(GraphQueryError):
        backend.query("MATCH (n:NoSuchLabel RETURN n")


def test_edges_to_undeclared_pairs_are_refused(backend: GraphStore) -> None:
    with pytest.raises(ValueError, match="does not connect"):
        backend.load([], [Edge("TARGETS", "Disease", "contract-C99", "Drug", "contract-drug")])


# --------------------------------------------------------------------------- build


def test_build_is_complete(built: tuple[LadybugStore, float]) -> None:
    store, _seconds = built
    stats = store.stats()
    # WHO ICD-10 chapter II (C00-D48): chapter, blocks, categories, subcategories
    assert stats["nodes"]["Disease"] > 850
    assert set(stats["edges"]) == set(REL_TYPES)
    antineoplastic = store.query("MATCH (d:Drug) WHERE d.kind = 'antineoplastic' RETURN count(d) AS n")
    assert antineoplastic[0]["n"] >= 120
    regimens = {r["id"] for r in store.query("MATCH (r:Regimen) RETURN r.id AS id")}
    assert {
        "FOLFOX",
        "CAPOX",
        "FOLFIRI",
        "FOLFIRINOX",
        "mFOLFIRINOX",
        "FLOT",
        "CROSS",
        "carboplatin-paclitaxel",
        "cisplatin-pemetrexed",
        "gemcitabine-nab-paclitaxel",
        "AC-T",
        "TCHP",
        "atezolizumab-bevacizumab",
        "durvalumab-tremelimumab",
    } <= regimens
    cross = store.query(
        "MATCH (r:Regimen {id: 'CROSS'})-[:HAS_COMPONENT]->(d:Drug) RETURN d.id AS id, r.kind AS k"
    )
    assert sorted(r["id"] for r in cross) == ["carboplatin", "paclitaxel"]
    assert cross[0]["k"] == "chemoradiotherapy"


def test_icd_hierarchy_parent_edges(kg: LadybugStore) -> None:
    rows = kg.query(
        "MATCH (c:Disease {id: 'C34.1'})-[:SUBCLASS_OF]->(p:Disease)-[:SUBCLASS_OF]->(b:Disease) "
        "RETURN p.id AS parent, p.kind AS kind, b.id AS block"
    )
    assert rows == [{"parent": "C34", "kind": "category", "block": "C30-C39"}]


def test_ensure_built_second_call_is_free(kg: LadybugStore) -> None:
    assert ensure_built(kg) is False  # the module build stamped the current fingerprint
    assert ensure_built(kg) is False


def test_ensure_built_builds_an_empty_store_once(tmp_path: Path) -> None:
    store = open_graph_store(Settings(data_dir=tmp_path))
    try:
        assert isinstance(store, LadybugStore)
        assert store.directory == tmp_path / "kg"
        assert ensure_built(store) is True
        assert ensure_built(store) is False
        assert store.stats()["nodes"]["Regimen"] >= 14
    finally:
        store.close()


# --------------------------------------------------------------------------- queries


def test_one_hop_and_two_hop(kg: LadybugStore) -> None:
    assert {"EGFR", "C34", "EGFR tyrosine kinase inhibitor", "EGFR L858R"} <= one_hop(
        kg, "Drug", "osimertinib"
    )
    around_folfox = two_hop(kg, "Regimen", "FOLFOX")
    # FOLFOX -> oxaliplatin -> platinum compound; FOLFOX -> fluorouracil -> fluoropyrimidine
    assert {"platinum compound", "fluoropyrimidine", "TYMS"} <= around_folfox
    assert "FOLFOX" not in around_folfox
    assert "osimertinib" in two_hop(kg, "Variant", "EGFR L858R") | one_hop(kg, "Variant", "EGFR L858R")


def test_drug_indications_include_regimens(kg: LadybugStore) -> None:
    rows = drug_indications(kg, "oxaliplatin")
    assert {"disease": "C18", "setting": "adjuvant", "line": "any", "via": "FOLFOX"} in rows
    assert {"disease": "C16", "setting": "perioperative", "line": "any", "via": "FLOT"} in rows


def test_benchmark_reports_latencies(kg: LadybugStore) -> None:
    result = benchmark(kg, repeats=3)
    assert set(result) == {"one_hop_p50_ms", "one_hop_p95_ms", "two_hop_p50_ms", "two_hop_p95_ms"}
    # the 5 ms p95 target is measured by `oncoboard kg bench`; here only a loose bound for a shared CPU
    assert 0 < result["one_hop_p50_ms"] < 50 and 0 < result["two_hop_p50_ms"] < 50


# --------------------------------------------------------------------------- linking


@pytest.mark.parametrize(
    ("mention", "labels", "node", "method"),
    [
        ("Lungenkarzinom", None, "C34", "synonym"),
        ("Bronchialkarzinom", None, "C34", "synonym"),
        ("lung cancer", None, "C34", "synonym"),
        ("Mammakarzinom", None, "C50", "synonym"),
        ("Darmkrebs", None, "C18", "synonym"),
        ("kolorektales Karzinom", None, "C18", "synonym"),
        ("Rektumkarzinom", None, "C20", "synonym"),
        ("Leberzellkarzinom", None, "C22.0", "synonym"),
        ("HCC", ("Disease",), "C22.0", "synonym"),
        ("Speiseröhrenkrebs", None, "C15", "synonym"),
        ("Magenkarzinom", None, "C16", "synonym"),
        ("Pankreaskarzinom", None, "C25", "synonym"),
        ("Prostatakarzinom", None, "C61", "synonym"),
        ("Lebermetastasen", None, "C78.7", "synonym"),
        ("Tagrisso", None, "osimertinib", "synonym"),
        ("Osimertinib", None, "osimertinib", "exact"),
        ("osimertinb", None, "osimertinib", "fuzzy"),
        ("Capecitabin", None, "capecitabine", "synonym"),
        ("XELOX", None, "CAPOX", "synonym"),
        ("Marcumar", None, "phenprocoumon", "synonym"),
        ("EGFR exon 19 del", None, "EGFR exon 19 deletion", "synonym"),
        ("Exon-19-Deletion", None, "EGFR exon 19 deletion", "synonym"),
        ("HER2/neu", None, "HER2", "synonym"),
        ("Östrogenrezeptor", None, "ER", "synonym"),
        ("dMMR", None, "MSI-H", "synonym"),
        ("Adenokarzinom", ("Histology",), "adenocarcinoma", "synonym"),
        ("C34.1", None, "C34.1", "exact"),
    ],
)
def test_linking_en_de(
    kg: LadybugStore, mention: str, labels: tuple[str, ...] | None, node: str, method: str
) -> None:
    link = graph_index(kg).linker.link(mention, labels)
    assert link is not None, mention
    assert (link.node, link.method) == (node, method)
    if link.node[:1] == "C" and link.node[1:3].isdigit():
        assert link.code == node


def test_linking_refuses_short_fuzzy_and_unknown(kg: LadybugStore) -> None:
    linker = graph_index(kg).linker
    assert linker.link("PR", ("Biomarker",)).node == "PR"  # type: ignore[union-attr]
    assert linker.link("XR", ("Biomarker",)) is None  # too short for a fuzzy guess
    assert linker.link("zzzz unknown remedy") is None
    assert normalize("Speiseröhren-Krebs") == "speiseroehren krebs"


# --------------------------------------------------------------------------- verifier


def _lung(m: str = "M1a") -> list[Tumor]:
    return [
        Tumor(
            site="lung",
            subsite="right upper lobe",
            laterality="right",
            histology="adenocarcinoma",
            tnm=TNM(t="T2a", n="N1", m=m),
        )
    ]


def _scheme(*treatments: Treatment, kind: str = "evidence_priority") -> Scheme:
    return Scheme(kind=kind, title="plan", rationale="test", treatments=list(treatments))  # type: ignore[arg-type]


def _by_kind(conflicts: list[KGConflict], kind: str) -> list[KGConflict]:
    return [c for c in conflicts if c.kind == kind]


def test_verify_links_tumour_biomarkers_and_medications(kg: LadybugStore) -> None:
    findings = Findings(
        oncology=True,
        biomarkers=(Biomarker(name="EGFR", result="exon 19 deletion", status="positive"),),
        medications=("Pantozol",),
        entities=(Entity(text="Bronchialkarzinom", label="Disease", start=0, end=17),),
    )
    result = verify(kg, findings, _lung())
    linked = {(link.mention, link.node, link.code) for link in result.linked}
    assert ("lung", "C34", "C34") in linked
    assert ("right upper lobe", "C34.1", "C34.1") in linked
    assert ("adenocarcinoma", "adenocarcinoma", "8140/3") in linked
    assert ("EGFR", "EGFR", None) in linked
    assert ("EGFR exon 19 deletion", "EGFR exon 19 deletion", None) in linked
    assert ("Pantozol", "pantoprazole", None) in linked
    assert ("Bronchialkarzinom", "C34", "C34") in linked
    assert result.conflicts == []
    context = "\n".join(result.context)
    assert "biomarkers routinely tested" in context and "osimertinib (advanced, first line" in context


def test_planted_biomarker_drug_conflict(kg: LadybugStore) -> None:
    findings = Findings(
        oncology=True, biomarkers=(Biomarker(name="EGFR", result="wild-type", status="negative"),)
    )
    result = verify(kg, findings, _lung(), [_scheme(Treatment(name="osimertinib", drugs=["osimertinib"]))])
    [conflict] = _by_kind(result.conflicts, "biomarker_mismatch")
    assert conflict.subject == "osimertinib"
    assert conflict.path[:2] == ["osimertinib", "REQUIRES"] and conflict.path[-2:] == ["VARIANT_OF", "EGFR"]
    assert "wild-type" in conflict.detail and "evidence_priority" in conflict.detail


def test_matching_biomarker_gives_no_conflict_and_missing_one_does(kg: LadybugStore) -> None:
    scheme = _scheme(Treatment(name="osimertinib", drugs=["osimertinib"]))
    positive = Findings(
        oncology=True, biomarkers=(Biomarker(name="EGFR", result="L858R", status="positive"),)
    )
    assert verify(kg, positive, _lung(), [scheme]).conflicts == []
    absent = verify(kg, Findings(oncology=True), _lung(), [scheme])
    [missing] = _by_kind(absent.conflicts, "biomarker_missing")
    assert missing.path[:2] == ["osimertinib", "REQUIRES"]


def test_her2_low_is_not_her2_positive(kg: LadybugStore) -> None:
    findings = Findings(
        oncology=True, biomarkers=(Biomarker(name="HER2", result="IHC 1+", status="negative"),)
    )
    tumors = [Tumor(site="breast", tnm=TNM(m="M1"))]
    schemes = [
        _scheme(Treatment(name="trastuzumab deruxtecan", drugs=["T-DXd"])),
        _scheme(Treatment(name="trastuzumab", drugs=["Herceptin"]), kind="innovative"),
    ]
    result = verify(kg, findings, tumors, schemes)
    assert {(c.kind, c.subject) for c in result.conflicts} == {("biomarker_mismatch", "trastuzumab")}


def test_anti_egfr_antibody_excluded_by_kras(kg: LadybugStore) -> None:
    findings = Findings(oncology=True, biomarkers=(Biomarker(name="KRAS", result="G12C", status="positive"),))
    tumors = [Tumor(site="colorectal", tnm=TNM(m="M1a"))]
    result = verify(
        kg, findings, tumors, [_scheme(Treatment(name="FOLFIRI + cetuximab", drugs=["FOLFIRI", "cetuximab"]))]
    )
    [conflict] = _by_kind(result.conflicts, "biomarker_exclusion")
    assert conflict.path == ["cetuximab", "EXCLUDED_BY", "KRAS", "<VARIANT_OF", "KRAS G12C"]


def test_contraindications_with_paths(kg: LadybugStore) -> None:
    findings = Findings(
        oncology=True,
        biomarkers=(Biomarker(name="EGFR", result="wild-type", status="negative"),),
        labs={"creatinine_clearance_ml_min": 35.0},
        conditions=("hearing_loss",),
    )
    scheme = _scheme(Treatment(name="cisplatin-pemetrexed", drugs=["cisplatin", "pemetrexed"]))
    result = verify(kg, findings, _lung(), [scheme])
    paths = {tuple(c.path) for c in _by_kind(result.conflicts, "contraindication")}
    assert (
        "cisplatin-pemetrexed",
        "HAS_COMPONENT",
        "cisplatin",
        "CONTRAINDICATED_IN",
        "creatinine_clearance_ml_min < 60",
    ) in paths
    assert (
        "cisplatin-pemetrexed",
        "HAS_COMPONENT",
        "cisplatin",
        "CONTRAINDICATED_IN",
        "hearing_loss",
    ) in paths
    assert (
        "cisplatin-pemetrexed",
        "HAS_COMPONENT",
        "pemetrexed",
        "CONTRAINDICATED_IN",
        "creatinine_clearance_ml_min < 45",
    ) in paths
    # a class-wide rule reaches the drug through its class
    dpd = verify(
        kg,
        Findings(oncology=True, conditions=("dpyd_deficiency",)),
        [Tumor(site="colorectal")],
        [_scheme(Treatment(name="CAPOX"))],
    )
    assert [
        "CAPOX",
        "HAS_COMPONENT",
        "capecitabine",
        "IN_CLASS",
        "fluoropyrimidine",
        "CONTRAINDICATED_IN",
        "dpyd_deficiency",
    ] in [c.path for c in dpd.conflicts]


def test_interactions_with_current_medications(kg: LadybugStore) -> None:
    findings = Findings(oncology=True, medications=("Marcumar", "Rifampicin"))
    scheme = _scheme(Treatment(name="capecitabine", drugs=["capecitabine"]))
    result = verify(kg, findings, [Tumor(site="colorectal", tnm=TNM(m="M1a"))], [scheme])
    [warfarin_like] = _by_kind(result.conflicts, "interaction")
    assert warfarin_like.path == [
        "capecitabine",
        "INTERACTS_WITH",
        "vitamin K antagonist",
        "<IN_CLASS",
        "phenprocoumon",
    ]
    assert "Marcumar" in warfarin_like.detail


def test_patient_level_conflicts_before_planning(kg: LadybugStore) -> None:
    findings = Findings(
        oncology=True,
        medications=("Tagrisso", "Johanniskraut", "Citalopram"),
        biomarkers=(Biomarker(name="EGFR", result="L858R", status="positive"),),
    )
    result = verify(kg, findings, _lung(), None)
    paths = [c.path for c in _by_kind(result.conflicts, "interaction")]
    assert ["osimertinib", "INTERACTS_WITH", "strong CYP3A4 inducer", "<IN_CLASS", "St John's wort"] in paths
    assert ["osimertinib", "INTERACTS_WITH", "QT-prolonging drug", "<IN_CLASS", "citalopram"] in paths
    assert all("current medication" in c.detail for c in result.conflicts)


def test_indication_and_setting_checks(kg: LadybugStore) -> None:
    findings = Findings(oncology=True, setting_hint="adjuvant")
    result = verify(
        kg,
        findings,
        [Tumor(site="pancreas")],
        [_scheme(Treatment(name="FOLFIRINOX"), Treatment(name="osimertinib", drugs=["osimertinib"]))],
    )
    [setting] = _by_kind(result.conflicts, "setting_mismatch")
    assert setting.subject == "FOLFIRINOX" and setting.path == ["FOLFIRINOX", "INDICATED_FOR", "C25"]
    [off_label] = _by_kind(result.conflicts, "no_indication")
    assert off_label.subject == "osimertinib" and off_label.path == ["osimertinib", "INDICATED_FOR", "C34"]
    # the adjuvant regimen is fine
    ok = verify(kg, findings, [Tumor(site="pancreas")], [_scheme(Treatment(name="mFOLFIRINOX"))])
    assert ok.conflicts == []


def test_plausibility_scores_indications_the_graph_lacks(kg: LadybugStore) -> None:
    triples = [t for t in graph_triples(kg) if t[1] in ("INDICATED_FOR", "TARGETS", "IN_CLASS")]
    model = train_transe(triples, dim=16, epochs=10, seed=0)
    scheme = _scheme(Treatment(name="osimertinib", drugs=["osimertinib"]))
    result = verify(kg, Findings(oncology=True), [Tumor(site="prostate")], [scheme], plausibility=model)
    [off_label] = _by_kind(result.conflicts, "no_indication")
    assert "embedding plausibility 0." in off_label.detail or "embedding plausibility 1." in off_label.detail


def test_graph_verifier_wiring(tmp_path: Path, kg: LadybugStore) -> None:
    verifier = GraphVerifier(Settings(data_dir=tmp_path), store=kg)
    result = verifier.verify(Findings(oncology=True), [Tumor(site="breast")])
    assert [link.node for link in result.linked] == ["C50"]


def test_cli_query_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli_kg import app
    from oncoboard.config import get_settings

    monkeypatch.setenv("ONCOBOARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("NEO4J_URI", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        bad = runner.invoke(app, ["query", "MATCH (n:Drug RETURN n"])
        assert bad.exit_code == 2 and "query failed" in bad.output
        assert runner.invoke(app, ["query", "RETURN 1", "--params", "[1]"]).exit_code == 2
        ok = runner.invoke(app, ["query", "MATCH (d:Drug) RETURN count(d) AS n"])
        assert ok.exit_code == 0 and ok.output.strip() == '{"n": 0}'
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- TransE


def _tiny_triples() -> list[tuple[str, str, str]]:
    triples = []
    for i in range(12):
        gene = f"gene{i % 3}"
        triples.append((f"drug{i}", "TARGETS", gene))
        triples.append((f"drug{i}", "IN_CLASS", f"class{i % 3}"))
    for g in range(3):
        triples.append((f"gene{g}", "TESTED_IN", f"disease{g}"))
    return triples


def test_transe_prefers_true_triples(tmp_path: Path) -> None:
    started = time.perf_counter()
    model = train_transe(_tiny_triples(), dim=16, epochs=60, batch_size=64, seed=1)
    assert time.perf_counter() - started < 20
    for i in range(12):
        true = model.plausibility(f"drug{i}", "TARGETS", f"gene{i % 3}")
        corrupted = model.plausibility(f"drug{i}", "TARGETS", f"gene{(i + 1) % 3}")
        assert true > corrupted, i
    assert model.plausibility("drug4", "TARGETS", "gene1") > 0.5
    assert model.distance("drug4", "TARGETS", "gene1") < model.distance("drug4", "TARGETS", "disease0")
    assert model.plausibility("drug4", "TARGETS", "unknown") == 0.0
    path = tmp_path / "transe.pt"
    model.save(path)
    again = TransEModel.load(path)
    assert again.plausibility("drug4", "TARGETS", "gene1") == pytest.approx(
        model.plausibility("drug4", "TARGETS", "gene1")
    )


def test_processes_share_the_built_graph_read_only_and_wait_for_a_writer(tmp_path: Path) -> None:
    """A server, its workers and a command-line consult read one embedded graph at the same time."""
    import subprocess
    import sys

    from tools.kg.build import open_shared_store
    from tools.kg.store import GraphStoreBusy

    settings = Settings(data_dir=tmp_path)
    first = open_shared_store(settings)
    assert isinstance(first, LadybugStore) and first.read_only
    nodes = first.stats()["total_nodes"]
    hold = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tools.kg.store import LadybugStore\n"
        "store = LadybugStore(Path(sys.argv[1]) / 'kg', read_only=sys.argv[2] == 'r')\n"
        "print('open', flush=True)\n"
        "time.sleep(30)\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path), "r"], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        second = open_shared_store(settings, wait_s=5)  # another process reads too: no lock conflict
        assert second.stats()["total_nodes"] == nodes
        second.close()
    finally:
        reader.kill()
        reader.wait()
    # a process holding the built graph for writing does not stop readers
    writer = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path), "w"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        third = open_shared_store(settings, wait_s=5)
        assert third.stats()["total_nodes"] == nodes
        third.close()
    finally:
        writer.kill()
        writer.wait()
    first.close()
    # a graph not yet built while another process holds it for writing (building): wait, then give up
    fresh = tmp_path / "fresh"
    builder = subprocess.Popen([sys.executable, "-c", hold, str(fresh), "w"], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout is not None and builder.stdout.readline().strip() == "open"
        started = time.monotonic()
        with pytest.raises(GraphStoreBusy, match="in use by another process"):
            open_shared_store(Settings(data_dir=fresh), wait_s=1.0)
        assert time.monotonic() - started >= 1.0
    finally:
        builder.kill()
        builder.wait()
    rebuilt = open_shared_store(Settings(data_dir=fresh), wait_s=5)
    assert isinstance(rebuilt, LadybugStore) and rebuilt.read_only and rebuilt.stats()["total_nodes"] == nodes
    rebuilt.close()
