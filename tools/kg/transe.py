"""TransE embeddings of the knowledge graph (torch, CPU) and link-prediction evaluation.

A triple (head, relation, tail) is plausible when ``head + relation`` lies close to ``tail`` in
embedding space (L1 distance). The verifier uses :meth:`TransEModel.plausibility` to score
drug-disease-biomarker triples a plan relies on that the graph does not hold as explicit edges.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tools.kg.schema import REL_TYPES
from tools.kg.store import GraphStore, embeddings_path

logger = logging.getLogger(__name__)

Triple = tuple[str, str, str]


def graph_triples(store: GraphStore) -> list[Triple]:
    """Every edge of the graph as a (head id, relation type, tail id) triple, sorted."""
    triples: list[Triple] = []
    for rel in REL_TYPES:
        for row in store.query(f"MATCH (a)-[e:{rel}]->(b) RETURN a.id AS h, b.id AS t"):
            triples.append((row["h"], rel, row["t"]))
    return sorted(set(triples))


@dataclass
class TransEModel:
    """Trained TransE embeddings with a calibration that maps distances to a [0, 1] plausibility."""

    entities: list[str]
    relations: list[str]
    entity_emb: torch.Tensor
    relation_emb: torch.Tensor
    #: distance at which plausibility is 0.5 (midway between true and corrupted training triples)
    center: float
    #: distance scale of the logistic calibration
    scale: float

    def __post_init__(self) -> None:
        self._ent = {e: i for i, e in enumerate(self.entities)}
        self._rel = {r: i for i, r in enumerate(self.relations)}

    def knows(self, entity: str) -> bool:
        """True when ``entity`` has an embedding."""
        return entity in self._ent

    def distance(self, head: str, relation: str, tail: str) -> float:
        """L1 distance ``|h + r - t|``; lower is more plausible. Unknown names raise KeyError."""
        h = self.entity_emb[self._ent[head]]
        r = self.relation_emb[self._rel[relation]]
        t = self.entity_emb[self._ent[tail]]
        return float((h + r - t).abs().sum())

    def plausibility(self, head: str, relation: str, tail: str) -> float:
        """Calibrated plausibility in [0, 1]; 0.0 for an entity or relation the model never saw."""
        if head not in self._ent or tail not in self._ent or relation not in self._rel:
            logger.debug("plausibility of unknown triple (%s, %s, %s)", head, relation, tail)
            return 0.0
        z = (self.center - self.distance(head, relation, tail)) / self.scale
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def save(self, path: Path) -> None:
        """Write the model to ``path`` (torch format, tensors and plain lists only)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "entities": self.entities,
                "relations": self.relations,
                "entity_emb": self.entity_emb,
                "relation_emb": self.relation_emb,
                "center": self.center,
                "scale": self.scale,
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> TransEModel:
        """Read a model written by :meth:`save`."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(
            list(state["entities"]),
            list(state["relations"]),
            state["entity_emb"],
            state["relation_emb"],
            float(state["center"]),
            float(state["scale"]),
        )


def _corrupt(batch: torch.Tensor, n_entities: int, generator: torch.Generator) -> torch.Tensor:
    corrupted = batch.clone()
    replace_head = torch.rand(len(batch), generator=generator) < 0.5
    random_entities = torch.randint(n_entities, (len(batch),), generator=generator)
    corrupted[replace_head, 0] = random_entities[replace_head]
    corrupted[~replace_head, 2] = random_entities[~replace_head]
    return corrupted


def train_transe(
    triples: Sequence[Triple],
    *,
    dim: int = 64,
    epochs: int = 200,
    lr: float = 0.01,
    margin: float = 2.0,
    batch_size: int = 512,
    negatives: int = 4,
    seed: int = 0,
) -> TransEModel:
    """Train TransE on ``triples`` (CPU, one thread) with margin ranking loss and uniform negatives."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    entities = sorted({h for h, _, _ in triples} | {t for _, _, t in triples})
    relations = sorted({r for _, r, _ in triples})
    ent = {e: i for i, e in enumerate(entities)}
    rel = {r: i for i, r in enumerate(relations)}
    data = torch.tensor([[ent[h], rel[r], ent[t]] for h, r, t in triples], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    bound = 6.0 / math.sqrt(dim)
    entity_emb = torch.nn.Parameter((torch.rand(len(entities), dim, generator=generator) * 2 - 1) * bound)
    relation_emb = torch.nn.Parameter((torch.rand(len(relations), dim, generator=generator) * 2 - 1) * bound)
    with torch.no_grad():
        relation_emb.div_(relation_emb.norm(dim=1, keepdim=True))
    optimizer = torch.optim.Adam([entity_emb, relation_emb], lr=lr)

    def dist(x: torch.Tensor) -> torch.Tensor:
        return (entity_emb[x[:, 0]] + relation_emb[x[:, 1]] - entity_emb[x[:, 2]]).abs().sum(dim=1)

    loss = torch.tensor(0.0)
    for _ in range(epochs):
        with torch.no_grad():
            entity_emb.div_(entity_emb.norm(dim=1, keepdim=True).clamp_min(1.0))
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            batch = data[order[start : start + batch_size]]
            pos = dist(batch).repeat(negatives)
            neg = dist(_corrupt(batch.repeat(negatives, 1), len(entities), generator))
            loss = torch.relu(margin + pos - neg).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        entity_emb.div_(entity_emb.norm(dim=1, keepdim=True).clamp_min(1.0))
        pos_d = dist(data)
        neg_d = dist(_corrupt(data, len(entities), generator))
        center = float((pos_d.mean() + neg_d.mean()) / 2)
        scale = max(float(neg_d.mean() - pos_d.mean()) / 4, 1e-3)
    logger.info(
        "TransE: %d triples, %d entities, dim %d, %d epochs, final loss %.4f in %.1f s",
        len(triples),
        len(entities),
        dim,
        epochs,
        float(loss.detach()),
        time.perf_counter() - started,
    )
    return TransEModel(entities, relations, entity_emb.detach().clone(), relation_emb.detach().clone(), center, scale)


def split_triples(
    triples: Sequence[Triple], test_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Triple], list[Triple]]:
    """Hold out a fraction of edges whose head and tail both stay in the training graph."""
    rng = random.Random(seed)
    shuffled = list(triples)
    rng.shuffle(shuffled)
    degree: dict[str, int] = defaultdict(int)
    for h, _, t in shuffled:
        degree[h] += 1
        degree[t] += 1
    target = int(len(shuffled) * test_fraction)
    train: list[Triple] = []
    test: list[Triple] = []
    for h, r, t in shuffled:
        if len(test) < target and degree[h] > 1 and degree[t] > 1:
            test.append((h, r, t))
            degree[h] -= 1
            degree[t] -= 1
        else:
            train.append((h, r, t))
    return train, test


def evaluate_link_prediction(
    model: TransEModel, test: Sequence[Triple], known: Sequence[Triple], k: int = 10
) -> dict[str, float]:
    """Filtered MRR and Hits@k over head and tail prediction for ``test`` triples.

    Every other true triple in ``known`` is removed from the candidate list before ranking, as in
    the standard filtered setting.
    """
    ent = {e: i for i, e in enumerate(model.entities)}
    rel = {r: i for i, r in enumerate(model.relations)}
    tails: dict[tuple[str, str], set[int]] = defaultdict(set)
    heads: dict[tuple[str, str], set[int]] = defaultdict(set)
    for h, r, t in known:
        if h in ent and t in ent:
            tails[(h, r)].add(ent[t])
            heads[(r, t)].add(ent[h])
    reciprocal: list[float] = []
    hits = 0
    E, R = model.entity_emb, model.relation_emb
    with torch.no_grad():
        for h, r, t in test:
            if h not in ent or t not in ent or r not in rel:
                continue
            hi, ri, ti = ent[h], rel[r], ent[t]
            tail_d = (E[hi] + R[ri] - E).abs().sum(dim=1)
            head_d = (E + R[ri] - E[ti]).abs().sum(dim=1)
            for d, true, others in ((tail_d, ti, tails[(h, r)]), (head_d, hi, heads[(r, t)])):
                mask = torch.zeros(len(E), dtype=torch.bool)
                mask[list(others - {true})] = True
                rank = int(((d < d[true]) & ~mask).sum()) + 1
                reciprocal.append(1.0 / rank)
                hits += rank <= k
    n = len(reciprocal)
    return {
        "mrr": sum(reciprocal) / n if n else 0.0,
        f"hits@{k}": hits / n if n else 0.0,
        "rankings": float(n),
    }


def model_path(data_dir: Path) -> Path:
    """Where the trained embeddings of the graph in ``data_dir`` live."""
    return embeddings_path(data_dir)


def train_and_save(store: GraphStore, data_dir: Path, **options: object) -> tuple[TransEModel, Path]:
    """Train on every edge of ``store`` and save into the data directory."""
    model = train_transe(graph_triples(store), **options)  # type: ignore[arg-type]
    path = model_path(data_dir)
    model.save(path)
    return model, path


def load_embeddings(data_dir: Path) -> TransEModel | None:
    """The saved model of ``data_dir``, or None when none was trained."""
    path = model_path(data_dir)
    return TransEModel.load(path) if path.is_file() else None
