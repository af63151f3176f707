"""The knowledge-graph verifier: link the case to the graph, check it, and give the planner context.

``verify`` is called before planning (``schemes=None``: links, context, patient-level conflicts
such as interactions between current medications) and again with the planner's schemes (each drug
checked for biomarker consistency, indication and setting, contraindications and interactions).
Every conflict carries its graph evidence as a path ``[node, RELATION, node, ...]``; a relation
written ``<REL`` is walked against its direction (``<IN_CLASS`` goes from a class to a member).
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from oncoboard.domain import Biomarker, Findings, KGConflict, KGLink, KGResult, Scheme, Tumor
from oncoboard.knowledge import load_table
from tools.kg.build import parse_lab_condition, stored_fingerprint
from tools.kg.linking import Linker, normalize
from tools.kg.store import GraphStore

logger = logging.getLogger(__name__)

_DRUG_LABELS = ("Drug", "Regimen", "DrugClass")
_MARKER_LABELS = ("Variant", "Biomarker")
_MAX_CONTEXT_AGENTS = 12
#: Variant kind for an expression category that does not make its gene positive (HER2-low).
EXPRESSION_LEVEL = "expression level"


class Plausibility(Protocol):
    """Scores a (head, relation, tail) triple that is not an explicit edge (e.g. a TransE model)."""

    def plausibility(self, head: str, relation: str, tail: str) -> float:
        """Higher is more plausible; roughly in [0, 1]."""
        ...


@dataclass(frozen=True)
class Indication:
    """One INDICATED_FOR edge."""

    agent: str
    disease: str
    setting: str
    line: str
    biomarkers: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class Rule:
    """A CONTRAINDICATED_IN or INTERACTS_WITH edge seen from its source."""

    other: str
    severity: str
    text: str


@dataclass
class GraphIndex:
    """The graph's clinical edges held in memory for fast checks; built from one store."""

    linker: Linker
    labels: dict[str, str]
    parents: dict[str, str] = field(default_factory=dict)
    classes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    components: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    targets: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    gene_of: dict[str, str] = field(default_factory=dict)
    requires: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    excluded_by: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tested_in: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    indications: dict[str, list[Indication]] = field(default_factory=lambda: defaultdict(list))
    contraindications: dict[str, list[Rule]] = field(default_factory=lambda: defaultdict(list))
    interactions: dict[str, list[Rule]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def from_store(cls, store: GraphStore) -> GraphIndex:
        """Read the clinical edges with one query per relationship type."""
        linker = Linker.from_store(store)
        index = cls(linker=linker, labels={n.id: n.label for n in linker.nodes.values()})

        def pairs(rel: str, extra: str = "") -> list[dict[str, Any]]:
            return store.query(f"MATCH (a)-[e:{rel}]->(b) RETURN a.id AS a, b.id AS b{extra}")

        for row in pairs("SUBCLASS_OF"):
            index.parents[row["a"]] = row["b"]
        for row in pairs("IN_CLASS"):
            index.classes[row["a"]].add(row["b"])
            index.members[row["b"]].add(row["a"])
        for row in pairs("HAS_COMPONENT"):
            index.components[row["a"]].append(row["b"])
        for row in pairs("TARGETS"):
            index.targets[row["a"]].append(row["b"])
        for row in pairs("VARIANT_OF"):
            index.gene_of[row["a"]] = row["b"]
        for row in pairs("REQUIRES"):
            index.requires[row["a"]].append(row["b"])
        for row in pairs("EXCLUDED_BY"):
            index.excluded_by[row["a"]].append(row["b"])
        for row in pairs("TESTED_IN"):
            index.tested_in[row["a"]].append(row["b"])
        for row in pairs(
            "INDICATED_FOR",
            ", e.setting AS setting, e.line AS line, e.biomarker AS biomarker, e.note AS note",
        ):
            markers = tuple(m for m in (row["biomarker"] or "").split("|") if m)
            index.indications[row["a"]].append(
                Indication(row["a"], row["b"], row["setting"], row["line"], markers, row["note"] or "")
            )
        for row in pairs("CONTRAINDICATED_IN", ", e.severity AS severity, e.note AS note"):
            index.contraindications[row["a"]].append(Rule(row["b"], row["severity"], row["note"] or ""))
        for row in pairs("INTERACTS_WITH", ", e.severity AS severity, e.effect AS effect"):
            index.interactions[row["a"]].append(Rule(row["b"], row["severity"], row["effect"] or ""))
        for mapping in (index.components, index.targets, index.requires, index.excluded_by, index.tested_in):
            for key in mapping:
                mapping[key].sort()
        return index

    def lineage(self, code: str) -> list[str]:
        """``code`` and its ICD-10 ancestors, most specific first."""
        chain = [code]
        while chain[-1] in self.parents:
            chain.append(self.parents[chain[-1]])
        return chain

    def related_diseases(self, a: str, b: str) -> bool:
        """True when one code is the other or an ancestor of it (an indication for C34 covers C34.1)."""
        return a in self.lineage(b) or b in self.lineage(a)


_indexes: weakref.WeakKeyDictionary[Any, tuple[str | None, GraphIndex]] = weakref.WeakKeyDictionary()


def graph_index(store: GraphStore) -> GraphIndex:
    """The cached index of ``store``, rebuilt when the stored build fingerprint changes."""
    fingerprint = stored_fingerprint(store)
    cached = _indexes.get(store)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    index = GraphIndex.from_store(store)
    _indexes[store] = (fingerprint, index)
    return index


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingRules:
    """The setting vocabulary of ``knowledge/kg/settings.yaml``."""

    words: dict[str, str]
    covered_by: dict[str, frozenset[str]]
    from_conditions: dict[str, str]
    m1_setting: str

    @classmethod
    def load(cls) -> SettingRules:
        """Read the table."""
        table = load_table("kg/settings.yaml")
        words: dict[str, str] = {}
        covered: dict[str, frozenset[str]] = {}
        for name, spec in table["settings"].items():
            covered[name] = frozenset(spec.get("covered_by", []))
            for word in [name, *spec.get("words", [])]:
                words[normalize(word)] = name
        return cls(words, covered, dict(table["from_conditions"]), str(table["m1_setting"]))

    def patient_setting(self, findings: Findings, tumors: Sequence[Tumor]) -> str | None:
        """The treatment setting the case is in, or None when the case does not say."""
        if findings.setting_hint:
            hint = normalize(findings.setting_hint)
            if hint in self.words:
                return self.words[hint]
            for word, setting in sorted(self.words.items(), key=lambda kv: -len(kv[0])):
                if f" {word} " in f" {hint} ":
                    return setting
        if any((t.tnm.m or "").upper().startswith("M1") for t in tumors):
            return self.m1_setting
        for condition in findings.conditions:
            if condition in self.from_conditions:
                return self.from_conditions[condition]
        return None

    def compatible(self, patient: str, indication: str) -> bool:
        """True when an indication in ``indication`` setting covers a patient in ``patient`` setting."""
        return indication == patient or indication in self.covered_by.get(patient, frozenset())


# --------------------------------------------------------------------------- patient state


@dataclass
class PatientState:
    """What the checks need to know about the patient, in graph terms."""

    diseases: list[str] = field(default_factory=list)
    positive: set[str] = field(default_factory=set)
    negative: set[str] = field(default_factory=set)
    variant_detail: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    gene_positive_unspecified: set[str] = field(default_factory=set)
    medications: dict[str, str] = field(default_factory=dict)
    conditions: set[str] = field(default_factory=set)
    labs: dict[str, float] = field(default_factory=dict)
    setting: str | None = None
    marker_text: dict[str, str] = field(default_factory=dict)


class _Verifier:
    def __init__(self, index: GraphIndex, rules: SettingRules, plausibility: Plausibility | None) -> None:
        self.index = index
        self.rules = rules
        self.plausibility = plausibility
        self.links: list[KGLink] = []
        self.conflicts: dict[tuple[str, str, tuple[str, ...]], KGConflict] = {}
        self.state = PatientState()

    # ------------------------------------------------------------------ linking
    def _add_link(self, link: KGLink | None) -> KGLink | None:
        if link is not None and all((x.mention, x.node) != (link.mention, link.node) for x in self.links):
            self.links.append(link)
        return link

    def link_tumor(self, tumor: Tumor) -> None:
        linker, idx = self.index.linker, self.index
        site_link = self._add_link(linker.link(tumor.site.replace("_", " "), ["Disease"]))
        disease = site_link.node if site_link else None
        if tumor.histology:
            self._add_link(linker.link(tumor.histology, ["Histology"]))
            # Some histologies name a disease of their own ("hepatocellular carcinoma" -> C22.0).
            specific = linker.link(tumor.histology, ["Disease"])
            if specific is not None and (disease is None or idx.related_diseases(disease, specific.node)):
                self._add_link(specific)
                if disease is None or disease in idx.lineage(specific.node):
                    disease = specific.node
        if tumor.subsite and disease is not None:
            words = tumor.subsite.split()
            if tumor.laterality:
                words = [w for w in words if w.lower() != tumor.laterality]
            sub = linker.link(" ".join(words), ["Disease"])
            block = idx.parents.get(disease)
            if sub is not None and sub.node != disease and block is not None and block in idx.lineage(sub.node):
                self._add_link(sub.model_copy(update={"mention": tumor.subsite}))
                disease = sub.node
        if disease is not None and disease not in self.state.diseases:
            if tumor.primary:
                self.state.diseases.insert(0, disease)
            else:
                self.state.diseases.append(disease)

    def link_biomarker(self, marker: Biomarker) -> None:
        linker = self.index.linker
        gene = linker.link(marker.name, _MARKER_LABELS)
        variant: KGLink | None = None
        if marker.result and marker.status != "unknown":
            combined = linker.link(f"{marker.name} {marker.result}", ["Variant"])
            alone = linker.link(marker.result, ["Variant"])
            for candidate in (combined, alone):
                if candidate is None:
                    continue
                if gene is None or self.index.gene_of.get(candidate.node) in (gene.node, None):
                    variant = candidate
                    break
        if gene is not None and gene.node in self.index.gene_of and variant is None:
            variant, gene = gene, None
        self._add_link(gene)
        self._add_link(variant)
        gene_id = gene.node if gene else (self.index.gene_of.get(variant.node) if variant else None)
        if gene_id is None and variant is None:
            return
        text = f"{marker.name} {marker.result} ({marker.status})".strip()
        if variant is not None and self.index.linker.nodes[variant.node].kind == EXPRESSION_LEVEL:
            # "HER2 IHC 1+" is HER2-low whatever the status says, and never HER2-positive.
            self.state.positive.add(variant.node)
            self.state.marker_text[variant.node] = text
            if gene_id:
                self.state.variant_detail[gene_id].add(variant.node)
                if marker.status == "negative":
                    self.state.negative.add(gene_id)
                    self.state.marker_text[gene_id] = text
            return
        if marker.status == "positive":
            if variant is not None:
                self.state.positive.add(variant.node)
                self.state.marker_text[variant.node] = text
                if gene_id:
                    self.state.variant_detail[gene_id].add(variant.node)
            if gene_id:
                self.state.positive.add(gene_id)
                self.state.marker_text.setdefault(gene_id, text)
                if variant is None:
                    self.state.gene_positive_unspecified.add(gene_id)
        elif marker.status == "negative":
            # "EGFR T790M negative" rules out that variant only; "EGFR wild-type" rules out the gene.
            target = variant.node if variant is not None else gene_id
            if target:
                self.state.negative.add(target)
                self.state.marker_text[target] = text

    def link_medication(self, mention: str) -> None:
        link = self._add_link(self.index.linker.link(mention, _DRUG_LABELS))
        if link is not None and self.index.labels.get(link.node) == "Drug":
            self.state.medications[link.node] = mention
        elif link is not None and self.index.labels.get(link.node) == "Regimen":
            for drug in self.index.components[link.node]:
                self.state.medications[drug] = mention

    def link_entity(self, text: str, label: str) -> None:
        hint = label.lower()
        labels: tuple[str, ...] | None = None
        if any(w in hint for w in ("drug", "medic", "chemical", "regimen", "therap")):
            labels = _DRUG_LABELS
        elif any(w in hint for w in ("disease", "diagnos", "tumo", "cancer", "neoplasm", "disorder")):
            labels = ("Disease", "Histology")
        elif any(w in hint for w in ("gene", "biomarker", "mutation", "variant", "protein", "marker")):
            labels = _MARKER_LABELS
        elif "histo" in hint or "morpho" in hint:
            labels = ("Histology", "Disease")
        self._add_link(self.index.linker.link(text, labels))

    # ------------------------------------------------------------------ conflicts
    def _conflict(self, kind: str, subject: str, detail: str, path: list[str], where: str | None) -> None:
        key = (kind, subject, tuple(path))
        existing = self.conflicts.get(key)
        if existing is None:
            suffix = f" [{where}]" if where else ""
            self.conflicts[key] = KGConflict(kind=kind, subject=subject, detail=detail + suffix, path=path)
        elif where and where not in existing.detail:
            self.conflicts[key] = existing.model_copy(update={"detail": existing.detail[:-1] + f", {where}]"})

    def _marker_satisfied(self, marker: str) -> bool:
        st = self.state
        if marker in st.positive:
            return True
        gene = self.index.gene_of.get(marker)
        # A positive gene result without the variant named cannot rule the variant out.
        return gene is not None and gene in st.gene_positive_unspecified and marker not in st.negative

    def _marker_ruled_out(self, markers: Sequence[str]) -> str | None:
        """A patient result that contradicts every marker in ``markers``, as its node id."""
        st = self.state
        for marker in markers:
            gene = self.index.gene_of.get(marker, marker)
            if marker in st.negative:
                continue
            if gene in st.negative:
                continue
            if st.variant_detail.get(gene) and marker != gene and marker not in st.variant_detail[gene]:
                continue
            return None
        first = markers[0]
        gene = self.index.gene_of.get(first, first)
        for candidate in (first, gene, *sorted(st.variant_detail.get(gene, ()))):
            if candidate in st.negative or candidate in st.positive:
                return candidate
        return gene

    def check_biomarkers(self, drug: str, where: str | None) -> bool:
        """Biomarker consistency of one drug; True when a conflict was recorded."""
        found = False
        required = self.index.requires.get(drug, [])
        if required and not any(self._marker_satisfied(m) for m in required):
            ruled_out = self._marker_ruled_out(required)
            if ruled_out is not None:
                blocking = next(
                    (
                        m
                        for m in required
                        if self.index.gene_of.get(m, m) == self.index.gene_of.get(ruled_out, ruled_out)
                    ),
                    required[0],
                )
                path = [drug, "REQUIRES", blocking]
                if blocking in self.index.gene_of:
                    path += ["VARIANT_OF", self.index.gene_of[blocking]]
                detail = (
                    f"{drug} needs {' or '.join(required)}; the patient has "
                    f"{self.state.marker_text.get(ruled_out, ruled_out)}"
                )
                self._conflict("biomarker_mismatch", drug, detail, path, where)
            else:
                detail = f"{drug} needs {' or '.join(required)}; no such result is documented"
                self._conflict("biomarker_missing", drug, detail, [drug, "REQUIRES", required[0]], where)
            found = True
        for marker in self.index.excluded_by.get(drug, []):
            hits = [marker] if marker in self.state.positive else []
            hits += sorted(v for v in self.state.variant_detail.get(marker, ()) if v in self.state.positive)
            if hits:
                path = [drug, "EXCLUDED_BY", marker]
                if hits[-1] != marker:
                    path += ["<VARIANT_OF", hits[-1]]
                detail = f"{drug} is not effective with {self.state.marker_text.get(hits[-1], hits[-1])}"
                self._conflict("biomarker_exclusion", drug, detail, path, where)
                found = True
        return found

    def check_indication(self, agent: str, where: str | None, biomarker_flagged: bool) -> None:
        """Indication, setting and indication-level biomarker of one drug or regimen."""
        all_ind = self.index.indications.get(agent, [])
        if not all_ind or not self.state.diseases:
            return  # no indication data for this agent: no evidence either way
        disease = self.state.diseases[0]
        matching = [i for i in all_ind if self.index.related_diseases(i.disease, disease)]
        if not matching:
            indicated = sorted({i.disease for i in all_ind})
            detail = f"no indication of {agent} for {disease} in the graph; indicated for {', '.join(indicated)}"
            if self.plausibility is not None:
                score = self.plausibility.plausibility(agent, "INDICATED_FOR", disease)
                detail += f"; embedding plausibility {score:.2f}"
            self._conflict("no_indication", agent, detail, [agent, "INDICATED_FOR", indicated[0]], where)
            return
        setting = self.state.setting
        if setting is not None:
            in_setting = [i for i in matching if self.rules.compatible(setting, i.setting)]
            if not in_setting:
                settings = sorted({i.setting for i in matching})
                detail = f"{agent} is indicated for {disease} in {', '.join(settings)} settings, not {setting}"
                self._conflict("setting_mismatch", agent, detail, [agent, "INDICATED_FOR", matching[0].disease], where)
                return
            matching = in_setting
        if biomarker_flagged:
            return
        if all(i.biomarkers for i in matching) and not any(
            self._marker_satisfied(m) for i in matching for m in i.biomarkers
        ):
            markers = sorted({m for i in matching for m in i.biomarkers})
            ruled_out = self._marker_ruled_out(markers)
            kind = "biomarker_mismatch" if ruled_out is not None else "biomarker_missing"
            have = f"; the patient has {self.state.marker_text.get(ruled_out, ruled_out)}" if ruled_out else ""
            detail = f"the indication of {agent} for {disease} requires {' or '.join(markers)}{have}"
            self._conflict(kind, agent, detail, [agent, "INDICATED_FOR", matching[0].disease], where)

    def _lab_hit(self, condition: str) -> str | None:
        parsed = parse_lab_condition(condition)
        if parsed is None:
            return condition if condition in self.state.conditions else None
        lab, op, threshold = parsed
        value = self.state.labs.get(lab)
        if value is None:
            return None
        if (op == "<" and value < threshold) or (op == ">" and value > threshold):
            return f"{lab} = {value:g}"
        return None

    def check_contraindications(self, agent: str, via: list[str], where: str | None) -> None:
        """Contraindications of ``agent`` itself and of its classes against the patient's findings."""
        sources: list[tuple[str, list[str]]] = [(agent, [agent])]
        sources += [(cls, [agent, "IN_CLASS", cls]) for cls in sorted(self.index.classes.get(agent, ()))]
        for source, prefix in sources:
            for rule in self.index.contraindications.get(source, []):
                basis = self._lab_hit(rule.other)
                if basis is None:
                    continue
                subject = agent
                path = [*via, *prefix, "CONTRAINDICATED_IN", rule.other]
                detail = f"{rule.severity}: {agent} with {basis}" + (f" ({rule.text})" if rule.text else "")
                self._conflict("contraindication", subject, detail, path, where)

    def check_interactions(self, drug: str, where: str | None) -> None:
        """Interactions between ``drug`` and the patient's current medications, in both directions."""
        for med, mention in self.state.medications.items():
            if med == drug:
                continue
            for a, b in ((drug, med), (med, drug)):
                for rule in self.index.interactions.get(a, []):
                    if rule.other == b:
                        path = [a, "INTERACTS_WITH", b]
                    elif rule.other in self.index.classes.get(b, ()):
                        path = [a, "INTERACTS_WITH", rule.other, "<IN_CLASS", b]
                    else:
                        continue
                    detail = f"{rule.severity}: {drug} with current {mention}" + (
                        f" ({rule.text})" if rule.text else ""
                    )
                    self._conflict("interaction", drug, detail, path, where)

    def check_treatment(self, name: str, drugs: Iterable[str], where: str | None) -> list[str]:
        """All checks for one treatment; returns the drug node ids it resolved to.

        The treatment's name and each listed drug may name a regimen or a single drug. A regimen
        is checked for indication as a whole; its components are not checked one by one for
        indication (cisplatin alone has none for a disease where cisplatin-fluorouracil has one).
        """
        linker = self.index.linker
        regimens: list[str] = []
        singles: list[str] = []
        for mention in [name, *drugs]:
            link = linker.link(mention, ("Drug", "Regimen"))
            if link is None:
                continue
            bucket = regimens if self.index.labels.get(link.node) == "Regimen" else singles
            if link.node not in bucket:
                bucket.append(link.node)
        via_regimen: dict[str, str] = {}
        for regimen in regimens:
            self.check_indication(regimen, where, biomarker_flagged=False)
            self.check_contraindications(regimen, [], where)
            for drug in self.index.components[regimen]:
                via_regimen.setdefault(drug, regimen)
        resolved = list(dict.fromkeys([*singles, *via_regimen]))
        for drug in resolved:
            flagged = self.check_biomarkers(drug, where)
            parent = via_regimen.get(drug)
            if parent is None:
                self.check_indication(drug, where, biomarker_flagged=flagged)
            self.check_contraindications(drug, [parent, "HAS_COMPONENT"] if parent else [], where)
            self.check_interactions(drug, where)
        return resolved

    # ------------------------------------------------------------------ context
    def _candidate_agents(self, disease: str) -> list[str]:
        """Agents indicated for ``disease`` in the patient's setting whose biomarkers the patient has."""
        idx = self.index
        ranked: list[tuple[int, str]] = []
        for agent, indications in sorted(idx.indications.items()):
            required = idx.requires.get(agent, [])
            if required and not any(self._marker_satisfied(m) for m in required):
                continue
            for ind in indications:
                if not idx.related_diseases(ind.disease, disease):
                    continue
                if self.state.setting and not self.rules.compatible(self.state.setting, ind.setting):
                    continue
                if ind.biomarkers and not any(self._marker_satisfied(m) for m in ind.biomarkers):
                    continue
                tag = f"{agent} ({ind.setting}, {ind.line} line"
                tag += f", {'/'.join(ind.biomarkers)})" if ind.biomarkers else ")"
                # Biomarker-selected indications the patient qualifies for come first.
                ranked.append((0 if ind.biomarkers or required else 1, tag))
                break
        return [tag for _, tag in sorted(ranked)]

    def context(self, scheme_drugs: Sequence[str]) -> list[str]:
        """Short readable facts about the linked diseases, biomarkers and drugs, for the planner."""
        idx = self.index
        lines: list[str] = []
        for disease in self.state.diseases:
            line = f"{disease} {idx.linker.nodes[disease].name}"
            markers = sorted(
                m
                for m, codes in idx.tested_in.items()
                if idx.labels.get(m) == "Biomarker" and any(idx.related_diseases(c, disease) for c in codes)
            )
            if markers:
                line += f": biomarkers routinely tested: {', '.join(markers)}"
            lines.append(line)
            agents = self._candidate_agents(disease)
            if agents:
                where = f" in the {self.state.setting} setting" if self.state.setting else ""
                shown = agents[:_MAX_CONTEXT_AGENTS]
                more = f" and {len(agents) - len(shown)} more" if len(agents) > len(shown) else ""
                listed = "; ".join(shown)
                lines.append(f"Indicated for {disease}{where}, given the documented biomarkers: {listed}{more}")
        for marker in sorted(self.state.positive):
            drugs = sorted(d for d, req in idx.requires.items() if marker in req)
            if drugs:
                lines.append(f"{marker} (positive) is the selection biomarker for: {', '.join(drugs)}")
        for marker in sorted(self.state.negative):
            gene = idx.gene_of.get(marker, marker)
            drugs = sorted(
                d for d, req in idx.requires.items() if req and all(idx.gene_of.get(m, m) == gene for m in req)
            )
            if drugs:
                lines.append(f"{marker} negative: not candidates: {', '.join(drugs)}")
        for drug in dict.fromkeys([*self.state.medications, *scheme_drugs]):
            parts = [f"{drug}: {', '.join(sorted(idx.classes.get(drug, ()))) or 'unclassified'}"]
            if idx.targets.get(drug):
                parts.append(f"targets {', '.join(idx.targets[drug])}")
            if idx.requires.get(drug):
                parts.append(f"requires {' or '.join(idx.requires[drug])}")
            lines.append("; ".join(parts))
        return lines


_rules_cache: list[SettingRules] = []


def _setting_rules() -> SettingRules:
    if not _rules_cache:
        _rules_cache.append(SettingRules.load())
    return _rules_cache[0]


def verify(
    store: GraphStore,
    findings: Findings,
    tumors: list[Tumor],
    schemes: list[Scheme] | None = None,
    *,
    plausibility: Plausibility | None = None,
) -> KGResult:
    """Link the case's mentions to the graph, check the patient (and the schemes, when given).

    Before planning (``schemes=None``) the result holds links, context lines for the planner and
    patient-level conflicts (current medications against each other, against the biomarkers and
    against the patient's conditions and labs). With schemes, every drug in every scheme is also
    checked for biomarker consistency, indication and setting, contraindications and interactions
    with the current medications. ``plausibility`` (e.g. a TransE model) adds a score to
    indications the graph does not hold.
    """
    verifier = _Verifier(graph_index(store), _setting_rules(), plausibility)
    state = verifier.state
    for tumor in tumors:
        verifier.link_tumor(tumor)
    for marker in findings.biomarkers:
        verifier.link_biomarker(marker)
    for med in findings.medications:
        verifier.link_medication(med)
    for entity in findings.entities:
        verifier.link_entity(entity.text, entity.label)
    state.conditions = set(findings.conditions) | ({"pregnancy"} if findings.pregnant else set())
    state.labs = dict(findings.labs)
    state.setting = verifier.rules.patient_setting(findings, tumors)

    # patient level: what the patient already takes
    for med in list(state.medications):
        if verifier.index.labels.get(med) == "Drug":
            verifier.check_interactions(med, "current medication")
            verifier.check_contraindications(med, [], "current medication")
            verifier.check_biomarkers(med, "current medication")

    scheme_drugs: list[str] = []
    for scheme in schemes or []:
        for treatment in scheme.treatments:
            scheme_drugs += verifier.check_treatment(treatment.name, treatment.drugs, f"scheme {scheme.kind}")
    result = KGResult(
        linked=list(verifier.links),
        conflicts=list(verifier.conflicts.values()),
        context=verifier.context(list(dict.fromkeys(scheme_drugs))),
    )
    logger.info(
        "kg verify: %d links, %d conflicts, %d context lines",
        len(result.linked),
        len(result.conflicts),
        len(result.context),
    )
    return result
