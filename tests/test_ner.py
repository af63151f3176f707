"""Disease-mention recognition: PubTator I/O, the lexicon and model recognisers, and scoring."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tools.ner import Mention, PubtatorDoc, evaluate, read_pubtator, recognise, write_pubtator
from tools.ner.lexicon import Lexicon, LexiconRecognizer, Rules
from tools.ner.pubtator import tokenize
from tools.ner.recognise import artifact_dir

RECORD = [
    "1|t|Germline mutations of the APC gene in familial adenomatous polyposis.",
    "1|a|Familial adenomatous polyposis (FAP) is an inherited colorectal cancer syndrome. Patients with FAP "
    "develop hundreds of colorectal adenomas and are at risk of hepatoblastoma. Breast cancer and ovarian "
    "cancer are not part of it.",
]

ANNOTATED = """\
10|t|Ataxia-telangiectasia and breast cancer.
10|a|Carriers of  ATM mutations ..  may have an increased risk of breast cancer (BC).
10\t0\t21\tAtaxia-telangiectasia\tSpecificDisease\tD001260
10\t26\t39\tbreast cancer\tDiseaseClass\tD001943
10\t102\t115\tbreast cancer\tSpecificDisease\tD001943
10\t117\t119\tBC\tSpecificDisease\tD001943
10\tCID\tD000001\tD001943

11|t|No mention here.
11|a|
"""


def test_pubtator_round_trip_keeps_exact_offsets() -> None:
    docs = read_pubtator(ANNOTATED.splitlines())
    assert [d.pmid for d in docs] == ["10", "11"]
    doc = docs[0]
    # the doubled spaces and ".." must survive: offsets index title + " " + abstract verbatim
    assert [doc.text[m.start : m.end] for m in doc.mentions] == [m.text for m in doc.mentions]
    assert doc.mentions[2] == Mention(102, 115, "breast cancer", "SpecificDisease", "D001943")
    assert doc.relations == ("10\tCID\tD000001\tD001943",)
    out = io.StringIO()
    write_pubtator(docs, out)
    assert out.getvalue() == ANNOTATED
    assert read_pubtator(out.getvalue().splitlines()) == docs


def test_read_filters_types_and_rejects_offsets_outside_record() -> None:
    lines = ANNOTATED.splitlines()
    only = read_pubtator(lines, types=["SpecificDisease"])
    assert len(only[0].mentions) == 3
    with pytest.raises(ValueError):
        read_pubtator(["5|t|Short.", "5|a|Text.", "5\t3\t40\tShort\tDisease\t-"])


def test_write_pubtator_prints_annotation_lines_in_contract_format() -> None:
    doc = PubtatorDoc("7", "Gout.", "Gout flares.").with_mentions([Mention(6, 10, "Gout"), Mention(0, 4, "Gout")])
    out = io.StringIO()
    write_pubtator([doc], out)
    assert out.getvalue().splitlines()[2:] == ["7\t0\t4\tGout\tDisease\t-", "7\t6\t10\tGout\tDisease\t-"]


def test_tokenize_splits_hyphens_and_brackets_with_offsets() -> None:
    toks = tokenize("G6PD-deficient (APC) cells")
    assert [t.text for t in toks] == ["G6PD", "-", "deficient", "(", "APC", ")", "cells"]
    assert (toks[4].start, toks[4].end) == (16, 19)


def test_shipped_lexicon_finds_expected_spans_on_hand_written_record() -> None:
    doc = read_pubtator(RECORD)[0]
    found = {(m.start, m.end): m.text for m in LexiconRecognizer.from_knowledge().recognise([doc])[0].mentions}
    expected = {
        (38, 68): "familial adenomatous polyposis",
        (70, 100): "Familial adenomatous polyposis",
        (102, 105): "FAP",
        (165, 168): "FAP",
        (228, 242): "hepatoblastoma",
        (244, 257): "Breast cancer",
        (262, 276): "ovarian cancer",
    }
    for span, text in expected.items():
        assert found.get(span) == text
    assert "Patients" not in found.values()


def test_lexicon_longest_match_rules_and_abbreviations_from_tiny_training_set() -> None:
    train = read_pubtator(
        [
            "1|t|Duchenne muscular dystrophy in boys.",
            "1|a|Muscular dystrophy is rare.",
            "1\t0\t27\tDuchenne muscular dystrophy\tSpecificDisease\t-",
            "1\t37\t55\tMuscular dystrophy\tDiseaseClass\t-",
        ]
    )
    lexicon = Lexicon.build(train)
    assert lexicon.annotated[("duchenne", "muscular", "dystrophy")] == 1
    recognizer = LexiconRecognizer(lexicon, Rules.from_table())
    text = "Duchenne muscular dystrophy (DMD) and hepatitis. DMD boys, also with Krabbe disease."
    spans = {text[s:e] for s, e in recognizer.spans(text)}
    # longest match wins over the nested "muscular dystrophy"; DMD is defined after it and reused;
    # "hepatitis" comes from the -itis suffix rule and "Krabbe disease" from the eponym + head rule
    assert spans == {"Duchenne muscular dystrophy", "DMD", "hepatitis", "Krabbe disease"}
    assert sum(1 for s, e in recognizer.spans(text) if text[s:e] == "DMD") == 2


def test_evaluate_exact_span_maths() -> None:
    gold = [PubtatorDoc("1", "a", "b", (Mention(0, 4, "x"), Mention(10, 20, "y"), Mention(30, 35, "z")))]
    pred = [PubtatorDoc("1", "a", "b", (Mention(0, 4, "x"), Mention(10, 19, "y"), Mention(40, 45, "w")))]
    prf = evaluate(gold, pred)
    assert (prf.tp, prf.fp, prf.fn) == (1, 2, 2)
    assert prf.precision == pytest.approx(1 / 3)
    assert prf.recall == pytest.approx(1 / 3)
    assert prf.f1 == pytest.approx(1 / 3)
    # the same span under another record identifier is not a match
    other = [PubtatorDoc("2", "a", "b", (Mention(0, 4, "x"),))]
    assert evaluate(gold, other).tp == 0
    assert evaluate([], []).f1 == 0.0


@pytest.mark.skipif(not (artifact_dir() / "adapter.safetensors").is_file(), reason="no shipped adapter")
def test_model_loads_shipped_adapter_and_tags_record() -> None:
    doc = read_pubtator(RECORD)[0]
    out = recognise([doc], method="model")[0]
    assert out.mentions, "the classifier found no mention"
    for m in out.mentions:
        assert doc.text[m.start : m.end] == m.text
        assert m.type == "Disease"
    assert (244, 257) in {(m.start, m.end) for m in out.mentions}
    manifest = Path(artifact_dir() / "manifest.json")
    assert manifest.is_file()


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError):
        recognise(read_pubtator(RECORD), method="guess")


def test_viterbi_follows_bio_grammar_and_inside_bias_extends_names() -> None:
    import math

    import torch

    from tools.ner.model import viterbi_bio

    def logp(*rows: tuple[float, float, float]) -> torch.Tensor:
        return torch.tensor([[math.log(p) for p in row] for row in rows])

    # argmax would read O I I (no B); the grammar forces the name to open with B
    scores = logp((0.5, 0.2, 0.3), (0.2, 0.1, 0.7), (0.3, 0.1, 0.6))
    assert [int(x) for x in scores.argmax(-1)] == [0, 2, 2]
    assert viterbi_bio(scores) == [1, 2, 2]
    # a lone I at the start is never emitted
    assert viterbi_bio(logp((0.1, 0.4, 0.5))) == [1]
    assert viterbi_bio(torch.zeros(0, 3)) == []
    # "variant of galactosemia": a weak I on "of" is kept once the inside bias is applied
    weak = logp((0.1, 0.8, 0.1), (0.55, 0.05, 0.4), (0.5, 0.05, 0.45))
    assert viterbi_bio(weak) == [1, 0, 0]
    assert viterbi_bio(weak, inside_bias=0.5) == [1, 2, 2]


def test_trim_span_drops_function_words_and_unclosed_brackets() -> None:
    from tools.ner.ensemble import trim_span

    words = Rules.from_table().boundary_words
    text = "associated with AMN or cerebral ALD; dehydrogenase (G6PD deficiency. WAS boys"
    cut = trim_span(text, (16, 22), words)
    assert cut is not None and text[cut[0] : cut[1]] == "AMN"
    start = text.index("dehydrogenase")
    cut = trim_span(text, (start, start + len("dehydrogenase (G6PD")), words)
    assert cut is not None and text[cut[0] : cut[1]] == "dehydrogenase"
    # an abbreviation in capitals is not the function word "was"
    start = text.index("WAS")
    assert trim_span(text, (start, start + 3), words) == (start, start + 3)
    assert trim_span(text, (text.index("or"), text.index("or") + 2), words) is None


def test_gene_short_forms_are_filtered_but_disease_abbreviations_kept() -> None:
    from tools.ner.ensemble import EnsembleRecognizer, gene_short_forms

    text = (
        "The von Hippel-Lindau tumor suppressor gene (VHL) is lost in von Hippel-Lindau disease (VHLD). "
        "We designated LPP (lipoma preferred partner gene). VHL and LPP bind; VHLD patients."
    )
    rules = Rules.from_table()
    assert gene_short_forms(tokenize(text), rules.gene_words, rules.abbreviation_max_length) == {"VHL", "LPP"}

    doc = PubtatorDoc("9", text, "")
    disease = (text.index("von Hippel-Lindau disease"), text.index(" (VHLD)"))
    predicted = [disease] + [(i, i + 3) for i in range(len(text)) if text.startswith("VHL ", i)]
    model_doc = doc.with_mentions(Mention(s, e, text[s:e]) for s, e in predicted)
    lexicon = LexiconRecognizer(Lexicon({}, {}), rules)
    ensemble = EnsembleRecognizer(None, lexicon, abbreviations=True, propagation=False, trim=True, gene_filter=True)  # type: ignore[arg-type]
    found = [text[m.start : m.end] for m in ensemble.combine(doc, model_doc).mentions]
    assert found == ["von Hippel-Lindau disease", "VHLD", "VHLD"]


def test_abbreviation_definition_may_continue_with_a_synonym() -> None:
    from tools.ner.lexicon import abbreviation_spans

    text = "The Schwartz-Jampel syndrome (SJS; chondrodystrophic myotonia) is rare. SJS is recessive."
    start = text.index("Schwartz")
    found = abbreviation_spans(text, tokenize(text), {(start, text.index(" (SJS"))}, 10)
    assert sorted(text[s:e] for s, e in found) == ["SJS", "SJS"]
