"""Deterministic bilingual (EN/DE) findings extraction.

``extract_findings(text, lang, structured)`` reads a clinical note, pathology or imaging report
and returns ``oncoboard.domain.Findings``: whether the case is oncological, the primary tumours
(site, subsite, laterality, histology with ICD-O-3 morphology, size, extent, nodes, distant
metastases, stated TNM, grade), biomarkers, performance status, demographics, organ function,
conditions, current medications and the treatment setting, each with character spans into the
text as evidence.

Design:
- every term, cue and mapping lives in ``knowledge/lexicons/*.yaml`` (source and edition in the
  header); tables are compiled on first use and cached, nothing is read at import;
- matching is phrase-based over whole-word, case-insensitive, hyphen- and blank-tolerant
  patterns compiled into one trie-shaped expression per table, so time grows about linearly
  with the text;
- assertions follow NegEx: negation, uncertainty ("Verdacht auf", "suspicious for") and
  hypothetical cues ("planned") keep a mention out of the facts; such mentions stay visible as
  entities labelled ``<LABEL>_NEGATED``, ``<LABEL>_UNCERTAIN`` or ``<LABEL>_HYPOTHETICAL``;
- contradictions are kept, not resolved: a metastasis next to "M0"/"no distant metastases"
  yields both ``metastases`` and ``metastases_negated=True``.

Modules: ``lexicon`` (matching), ``negation`` (clauses and assertion cues), ``numbers`` (sizes),
``tnm`` (stated TNM), ``sites`` (primary sites and histology), ``spread`` (extent, nodes,
metastases), ``organ_extent`` (the structures that kidney and thyroid T categories name),
``grading`` (G, Gleason, ISUP), ``biomarkers``, ``patient`` (age, sex, ECOG, labs, conditions,
medications, setting) and ``findings`` (assembly).
"""

from tools.extraction.findings import extract_findings

__all__ = ["extract_findings"]
