"""Instruction builder, LoRA fine-tuning (tiny in-process model), adapter loading, serve-model app, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from oncoboard.llm.instructions import (
    DISEASE_TYPES,
    ChatTurn,
    InstructionItem,
    load_instructions,
    make_item,
    parse_pubtator,
    pubtator_instructions,
    sentence_mentions,
    split_holdout,
)

PUBTATOR = (
    "111|t|Familial colon cancer in two kindreds.\n"
    "111|a|We studied hereditary nonpolyposis colorectal cancer. No other findings were seen. "
    "Cisplatin caused nephrotoxicity.\n"
    "111\t9\t21\tcolon cancer\tSpecificDisease\tD003110\n"
    "111\t50\t91\thereditary nonpolyposis colorectal cancer\tSpecificDisease\tD003123\n"
    "111\t122\t131\tCisplatin\tChemical\tD002945\n"
    "111\t139\t153\tnephrotoxicity\tDisease\tD007674\n"
    "111\tCID\tD002945\tD007674\n"
    "\n"
    "222|t|A case of asthma.\n"
    "222|a|\n"
    "222\t10\t16\tasthma\tDisease\tD001249\n"
)


def _chat_jsonl(path: Path, n: int) -> Path:
    """A small chat JSONL for the tiny model, in the builder's own format."""
    items = [
        make_item(
            item_id=f"t:{i}",
            task="tnm",
            lang="en",
            source="test",
            instruction="Give the TNM stated in this report as JSON.",
            text=f"Stage T{i % 4 + 1} N{i % 3} M0.",
            answer={"t": f"T{i % 4 + 1}", "n": f"N{i % 3}", "m": "M0"},
        )
        for i in range(n)
    ]
    path.write_text("".join(it.model_dump_json() + "\n" for it in items), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- builder


def test_parse_pubtator_reads_records_mentions_and_skips_relations() -> None:
    docs = parse_pubtator(PUBTATOR)
    assert [d.pmid for d in docs] == ["111", "222"]
    first = docs[0]
    assert len(first.annotations) == 4
    for ann in first.annotations:
        assert first.text[ann.start : ann.end] == ann.text
    assert docs[1].text == "A case of asthma."


def test_sentence_level_disease_items_have_exact_instruction_and_answer() -> None:
    docs = parse_pubtator(PUBTATOR)
    assert sentence_mentions(docs[0], DISEASE_TYPES) == [
        ("Familial colon cancer in two kindreds.", ["colon cancer"]),
        ("We studied hereditary nonpolyposis colorectal cancer.", ["hereditary nonpolyposis colorectal cancer"]),
        ("No other findings were seen.", []),
        ("Cisplatin caused nephrotoxicity.", ["nephrotoxicity"]),
    ]
    items = pubtator_instructions(docs, task="ner_disease", types=DISEASE_TYPES, source="ncbi", empty_ratio=0.2)
    by_id = {it.id: it for it in items}
    item = by_id["ncbi:111:0:ner_disease:en"]
    assert item.messages[0] == ChatTurn(
        role="user",
        content="Mark the disease mentions in this text. Answer with a JSON list of the mentions, in order, "
        "[] if none.\n\nFamilial colon cancer in two kindreds.",
    )
    assert item.answer == '["colon cancer"]'
    # four sentences with mentions, one without: 20 % of five items is the one empty sentence
    assert len(items) == 5
    assert sum(it.answer == "[]" for it in items) == 1


def test_german_wording_and_held_out_split_by_text() -> None:
    docs = parse_pubtator(PUBTATOR)
    items = pubtator_instructions(docs, task="ner_disease", types=DISEASE_TYPES, source="ncbi", lang="de")
    assert items[0].messages[0].content.startswith("Markiere die Krankheitserwähnungen")
    twins = [
        make_item(
            item_id=f"x:{i}:{task}", task=task, lang="en", source="t", instruction=task, text=f"sentence {i}", answer=[]
        )
        for i in range(40)
        for task in ("tnm", "icd10")
    ]
    train, held = split_holdout(twins, 0.3, seed=1)
    assert held and train and len(train) + len(held) == len(twins)
    held_texts = {it.messages[0].content.split("\n\n")[1] for it in held}
    assert not held_texts & {it.messages[0].content.split("\n\n")[1] for it in train}
    assert split_holdout(twins, 0.3, seed=1) == (train, held)


def test_build_instruction_set_writes_splits_manifest_and_engine_checked_answers(tmp_path: Path) -> None:
    from evaluation.instruction_data import build_instruction_set

    ncbi = tmp_path / "ncbi.pubtator"
    ncbi.write_text(PUBTATOR, encoding="utf-8")
    out = tmp_path / "set"
    manifest = build_instruction_set(
        out, ncbi=ncbi, bc5cdr=None, german_max=40, english_oncology=20, template_heldout_sentences=4
    )
    train = load_instructions(out / "train.jsonl")
    held = load_instructions(out / "heldout.jsonl")
    assert manifest.totals == {"train": len(train), "heldout": len(held), "train_no_de": manifest.totals["train_no_de"]}
    assert set(manifest.sources) == {"templates", "ncbi_disease"}
    german = [it for it in train if it.lang == "de"]
    assert 0 < len(german) <= 40
    assert all(it.lang == "en" for it in load_instructions(out / "train_no_de.jsonl"))
    tnm_de = next(it for it in german if it.task == "tnm")
    answer = json.loads(tnm_de.answer)
    text = tnm_de.messages[0].content
    assert text.startswith("Gib die in diesem Befund angegebene TNM-Klassifikation")
    assert f"{answer['prefix']}{answer['t']} {answer['prefix']}{answer['n']} {answer['m']}" in text
    assert json.loads((out / "manifest.json").read_text())["counts"]["train"] == manifest.counts["train"]


# --------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Four LoRA steps on the tiny model with a checkpoint every two steps."""
    from oncoboard.llm.finetune import LoraSettings, finetune

    root = tmp_path_factory.mktemp("ft")
    data = _chat_jsonl(root / "train.jsonl", 12)
    heldout = _chat_jsonl(root / "heldout.jsonl", 4)
    out = root / "adapter"
    settings = LoraSettings(steps=4, batch_size=2, save_every=2, keep_checkpoints=3, seed=3, threads=1, rank=4)
    finetune(tiny_model_dir, data, out, settings, eval_data=heldout, command=["test"])
    return data, heldout, out


def test_finetune_writes_adapter_manifest_and_checkpoint(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path
) -> None:
    from oncoboard.llm.finetune import file_sha256

    data, heldout, out = trained
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "adapter_config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data_sha256"] == file_sha256(data)
    assert manifest["eval_items"] == 4
    assert manifest["total_steps"] == 4 and manifest["steps_run"] == 4
    assert manifest["settings"]["rank"] == 4 and manifest["command"] == ["test"]
    assert manifest["base_model"] == str(tiny_model_dir)
    assert manifest["train_loss"] > 0 and manifest["eval_loss"] > 0 and manifest["steps_per_s"] > 0
    assert (out / "checkpoints" / "step-2" / "trainer_state.pt").is_file()


def test_resume_continues_from_checkpoint_and_matches_uninterrupted_run(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from safetensors.torch import load_file

    from oncoboard.llm.finetune import LoraSettings, finetune

    data, _, out = trained
    interrupted = tmp_path / "adapter"
    (interrupted / "checkpoints").mkdir(parents=True)
    shutil.copytree(out / "checkpoints" / "step-2", interrupted / "checkpoints" / "step-2")
    settings = LoraSettings(steps=4, batch_size=2, save_every=2, keep_checkpoints=3, seed=3, threads=1, rank=4)
    events: list[int] = []
    result = finetune(
        tiny_model_dir, data, interrupted, settings, resume=True, progress=lambda e: events.append(e.step)
    )
    assert result.resumed_from_step == 2 and result.steps_run == 2
    assert events == [2, 3, 4]
    full = load_file(str(out / "adapter_model.safetensors"))
    resumed = load_file(str(interrupted / "adapter_model.safetensors"))
    assert full.keys() == resumed.keys()
    for key, tensor in full.items():
        assert (tensor - resumed[key]).abs().max() < 1e-5, key


def test_resume_refuses_a_checkpoint_of_other_data(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from oncoboard.llm.finetune import FinetuneError, LoraSettings, finetune

    _, heldout, out = trained
    target = tmp_path / "adapter"
    shutil.copytree(out / "checkpoints", target / "checkpoints")
    settings = LoraSettings(steps=4, batch_size=2, save_every=2, seed=3, threads=1, rank=4)
    with pytest.raises(FinetuneError, match="other data"):
        finetune(tiny_model_dir, heldout, target, settings, resume=True)


def test_bad_training_data_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from oncoboard.llm.finetune import FinetuneError, finetune

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    with pytest.raises(FinetuneError, match="assistant"):
        finetune(tiny_model_dir, bad, tmp_path / "out")


def test_transformers_model_loads_the_adapter_and_generates(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path
) -> None:
    from oncoboard.llm.base import Message
    from oncoboard.llm.transformers_backend import TransformersModel

    _, _, out = trained
    llm = TransformersModel(tiny_model_dir, out, threads=1)
    assert llm.describe == f"transformers/{tiny_model_dir.name}/adapter"
    assert type(llm.model).__name__ == "PeftModelForCausalLM"
    reply = llm.generate([Message("user", "Stage T2 N1 M0.")], max_tokens=6)
    assert isinstance(reply, str)


def test_serve_model_app_lists_the_served_name(trained: tuple[Path, Path, Path], tiny_model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from app.cli_model import build_model_app

    _, _, out = trained
    client = TestClient(build_model_app(tiny_model_dir, out, "onco-test"))
    body = client.get("/v1/models").json()
    assert [m["id"] for m in body["data"]] == ["onco-test"]


def test_batched_generation_matches_single_generation(tiny_model_dir: Path) -> None:
    from evaluation.model_eval import generate_batch
    from oncoboard.llm.base import Message
    from oncoboard.llm.transformers_backend import TransformersModel

    llm = TransformersModel(tiny_model_dir, threads=1)
    items = [
        make_item(item_id=str(i), task="tnm", lang="en", source="t", instruction="TNM?", text=text, answer={})
        for i, text in enumerate(["Stage T1 N0 M0.", "Der Patient hat ein Adenokarzinom des rechten Oberlappens."])
    ]
    batched = generate_batch(llm, items, max_tokens=5, batch_size=2)
    single = [llm.generate([Message(t.role, t.content) for t in it.prompt], max_tokens=5) for it in items]
    assert batched == single


# --------------------------------------------------------------------------- scoring


def _item(task: str, answer: object) -> InstructionItem:
    return make_item(item_id="i", task=task, lang="en", source="t", instruction="x", text="y", answer=answer)


def test_scoring_of_mention_lists_and_json_objects() -> None:
    from evaluation.model_eval import score_reply, summarise

    ner = _item("ner_disease", ["colon cancer", "asthma"])
    exact = score_reply(ner, 'Mentions: ["Colon  cancer", "asthma"]')
    assert exact.exact and (exact.tp, exact.fp, exact.fn) == (2, 0, 0)
    partial = score_reply(ner, '["colon cancer", "fever"]')
    assert not partial.exact and (partial.tp, partial.fp, partial.fn) == (1, 1, 1)
    prose = score_reply(ner, "The disease is colon cancer.")
    assert not prose.parsed and prose.fn == 2
    tnm = _item("tnm", {"prefix": "p", "t": "T2", "n": "N1", "m": "M0"})
    good = score_reply(tnm, '```json\n{"prefix": "p", "t": "T2", "n": "N1", "m": "M0"}\n```')
    assert good.exact and good.tp == 4
    wrong = score_reply(tnm, '{"prefix": "p", "t": "T3", "n": "N1"}')
    assert not wrong.exact and (wrong.tp, wrong.fp, wrong.fn) == (2, 1, 2)
    summary = summarise([exact, partial, prose])
    assert summary["ner_disease/en"]["exact_match"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["ner_disease/en"]["parse_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["all"]["items"] == 3


# --------------------------------------------------------------------------- command line


def _model_cli() -> typer.Typer:
    from app.cli_model import register

    app = typer.Typer()
    register(app)
    return app


def test_cli_instructions_build_and_finetune(tiny_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    ncbi = tmp_path / "ncbi.pubtator"
    ncbi.write_text(PUBTATOR, encoding="utf-8")
    built = runner.invoke(
        _model_cli(),
        ["instructions", "build", "--out", str(tmp_path / "set"), "--ncbi", str(ncbi), "--german-max", "20"],
    )
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["totals"]["train"] > 0
    data = _chat_jsonl(tmp_path / "train.jsonl", 6)
    args = ["finetune", "--base", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "ad")]
    trained = runner.invoke(_model_cli(), [*args, "--steps", "2", "--batch-size", "2", "--rank", "2", "--threads", "1"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["train_loss"] > 0
    assert json.loads((tmp_path / "ad" / "manifest.json").read_text())["settings"]["rank"] == 2
    missing = runner.invoke(
        _model_cli(), ["finetune", "--base", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2
    assert "not a model directory" in missing.stderr


def test_compare_adapters_reports_base_adapter_and_german_effect(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from evaluation.model_eval import compare_adapters

    _, _, out = trained
    items = [
        make_item(
            item_id=f"{lang}:{i}",
            task="tnm",
            lang=lang,
            source="t",
            instruction="TNM?",
            text=f"T{i} N0 M0.",
            answer={"t": f"T{i}", "n": "N0", "m": "M0"},
        )
        for lang in ("en", "de")
        for i in (1, 2)
    ]
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(it.model_dump_json() + "\n" for it in items), encoding="utf-8")
    result = compare_adapters(
        tiny_model_dir,
        heldout,
        {"with_de": out, "without_de": out},
        per_group=1,
        german_only=["without_de"],
        max_tokens=4,
    )
    assert result["models"]["base"]["summary"]["all"]["items"] == 2
    assert result["models"]["without_de"]["summary"]["all"]["items"] == 1
    assert set(result["german_effect"]) == {"tnm/de"}
    assert result["german_effect"]["tnm/de"]["f1_delta"] == 0.0


def test_cli_eval_model_compares_base_and_adapter(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from app.cli_eval import register

    _, _, adapter = trained
    items = [
        make_item(
            item_id=f"{lang}:1",
            task="tnm",
            lang=lang,
            source="t",
            instruction="TNM?",
            text="T2 N0 M0.",
            answer={"t": "T2", "n": "N0", "m": "M0"},
        )
        for lang in ("en", "de")
    ]
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(it.model_dump_json() + "\n" for it in items), encoding="utf-8")
    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    runner = CliRunner()
    base = ["eval", "model", "--heldout", str(heldout), "--model", str(tiny_model_dir), "--max-tokens", "3"]
    done = runner.invoke(app, [*base, "--adapter", f"lora={adapter}", "--out", str(tmp_path / "m.json")])
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert set(result["models"]) == {"base", "lora"}
    assert result["models"]["lora"]["summary"]["all"]["items"] == 2
    assert result["models"]["lora"]["model"].endswith(f"/{adapter.name}")
    bad = runner.invoke(app, [*base, "--adapter", "no-equals-sign"])
    assert bad.exit_code == 2
    unknown = runner.invoke(app, [*base, "--adapter", f"lora={adapter}", "--german-only", "other"])
    assert unknown.exit_code == 2
