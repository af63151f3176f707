"""Knowledge-graph evaluation: link prediction (TransE), mention linking, planted conflicts.

- Link prediction: 10% of the graph's edges held out (both ends kept in training), TransE trained
  on the rest, filtered MRR and Hits@10 over head and tail prediction.
- Linking: precision and recall on the labelled mentions of ``knowledge/kg/eval_set.yaml``
  (English and German, with misspellings and mentions that must stay unlinked).
- Conflicts: the verifier on cases with planted inconsistencies; recall of the planted
  (kind, subject) pairs and the conflicts it raises on the clean cases.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from oncoboard.domain import Findings, Scheme, Tumor
from oncoboard.knowledge import load_table
from tools.kg.build import build_graph, ensure_built
from tools.kg.store import GraphStore, LadybugStore
from tools.kg.transe import evaluate_link_prediction, graph_triples, split_triples, train_transe
from tools.kg.verify import graph_index, verify

logger = logging.getLogger(__name__)

EVAL_TABLE = "kg/eval_set.yaml"


def evaluate_link_prediction_on_graph(
    store: GraphStore, *, dim: int = 64, epochs: int = 200, seed: int = 0, test_fraction: float = 0.1
) -> dict[str, Any]:
    """Hold out edges, train TransE on the rest, and score the held-out edges (filtered)."""
    triples = graph_triples(store)
    train, test = split_triples(triples, test_fraction, seed=seed)
    started = time.perf_counter()
    model = train_transe(train, dim=dim, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - started
    metrics = evaluate_link_prediction(model, test, triples)
    by_relation: dict[str, dict[str, float]] = {}
    for rel in sorted({r for _, r, _ in test}):
        subset = [t for t in test if t[1] == rel]
        by_relation[rel] = {
            k: round(v, 4) for k, v in evaluate_link_prediction(model, subset, triples).items()
        }
    return {
        "triples": len(triples),
        "train": len(train),
        "test": len(test),
        "dim": dim,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "mrr": round(metrics["mrr"], 4),
        "hits@10": round(metrics["hits@10"], 4),
        "by_relation": by_relation,
    }


def evaluate_linking(store: GraphStore) -> dict[str, Any]:
    """Precision, recall and F1 of the linker on the labelled mention set, with the errors."""
    linker = graph_index(store).linker
    rows = load_table(EVAL_TABLE)["mentions"]
    correct = linked = gold = 0
    methods: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    for row in rows:
        expected = row.get("node")
        link = linker.link(str(row["mention"]), row.get("labels"))
        got = link.node if link else None
        gold += expected is not None
        if link is not None:
            linked += 1
            methods[link.method] += 1
        if got is not None and got == expected:
            correct += 1
        elif got != expected:
            errors.append({"mention": row["mention"], "expected": expected, "got": got})
    precision = correct / linked if linked else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "mentions": len(rows),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "methods": dict(methods),
        "errors": errors,
    }


def evaluate_conflicts(store: GraphStore) -> dict[str, Any]:
    """Planted conflicts found, and conflicts raised on the clean cases."""
    cases = load_table(EVAL_TABLE)["cases"]
    planted = found = clean_cases = clean_false = 0
    missed: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for case in cases:
        findings = Findings.model_validate(case["findings"])
        tumors = [Tumor.model_validate(t) for t in case["tumors"]]
        schemes = [Scheme.model_validate(s) for s in case.get("schemes", [])]
        result = verify(store, findings, tumors, schemes)
        got = {(c.kind, c.subject) for c in result.conflicts}
        expect = {(k, s) for k, s in case["expect"]}
        planted += len(expect)
        found += len(expect & got)
        for kind, subject in sorted(expect - got):
            missed.append({"case": case["id"], "kind": kind, "subject": subject})
        if not expect:
            clean_cases += 1
            clean_false += len(got)
        for kind, subject in sorted(got - expect):
            extra.append({"case": case["id"], "kind": kind, "subject": subject})
    return {
        "cases": len(cases),
        "planted": planted,
        "found": found,
        "recall": round(found / planted, 4) if planted else 0.0,
        "clean_cases": clean_cases,
        "conflicts_on_clean_cases": clean_false,
        "missed": missed,
        "unexpected": extra,
    }


def evaluate_kg(store: GraphStore | None = None, *, dim: int = 64, epochs: int = 200) -> dict[str, Any]:
    """All three evaluations; builds a throw-away embedded graph when no store is given."""
    if store is not None:
        ensure_built(store)
        return _all(store, dim, epochs)
    with tempfile.TemporaryDirectory(prefix="kg-eval-") as folder:
        own = LadybugStore(Path(folder))
        try:
            started = time.perf_counter()
            build_graph(own)
            result = _all(own, dim, epochs)
            result["build_seconds"] = round(time.perf_counter() - started, 1)
            return result
        finally:
            own.close()


def _all(store: GraphStore, dim: int, epochs: int) -> dict[str, Any]:
    return {
        "stats": store.stats(),
        "linking": evaluate_linking(store),
        "conflicts": evaluate_conflicts(store),
        "link_prediction": evaluate_link_prediction_on_graph(store, dim=dim, epochs=epochs),
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    json.dump(evaluate_kg(), sys.stdout, indent=2)
    sys.stdout.write("\n")
