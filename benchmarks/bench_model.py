"""Local model cost: the default language model and the disease-mention classifier (prints numbers, asserts nothing).

For each component, in a fresh child process so that peak memory belongs to it alone: load time,
per-case latency on shipped examples and peak resident memory (``getrusage``); for the language
model also generation speed in new tokens per second. The language model is the default
SmolLM2-135M-Instruct through the transformers backend (converted into the data directory on first
use, or ``--model DIR``); the classifier is the shipped MiniLM adapter, alone and inside the ensemble.

Usage: ``python benchmarks/bench_model.py [--model DIR] [--cases a.txt b.txt] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ("examples/colon_dpd_en.txt", "examples/hcc_de.txt")
# Enough new tokens for a steady decoding rate; a planner rationale is about this long.
NEW_TOKENS = 96


def _peak_rss_mb() -> float:
    # ru_maxrss is in kibibytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _case_texts(paths: list[str]) -> list[tuple[str, str]]:
    return [(Path(p).name, (ROOT / p).read_text(encoding="utf-8")) for p in paths]


def _lang(name: str) -> str:
    return "de" if name.endswith("_de.txt") else "en"


def bench_llm(model: str | None, cases: list[str], threads: int) -> dict[str, Any]:
    """Load time, tokens/s and per-case latency of the default language model."""
    import torch

    from oncoboard.llm.base import Message
    from oncoboard.llm.transformers_backend import TransformersModel
    from prompts import render_prompt

    torch.set_num_threads(threads)
    if model is None:
        from oncoboard.config import get_settings
        from oncoboard.llm.convert import ensure_default_model

        started = time.perf_counter()
        model_dir = ensure_default_model(get_settings().data_dir)
        convert_s = time.perf_counter() - started
    else:
        model_dir, convert_s = Path(model), 0.0
    started = time.perf_counter()
    llm = TransformersModel(model_dir, threads=threads)
    load_s = time.perf_counter() - started
    tokenizer = llm.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    per_case = []
    rates = []
    for name, text in _case_texts(cases):
        prompt = render_prompt(
            "scheme_reasoning",
            _lang(name),
            patient_summary=text[:2000],
            kind="standard",
            title="the board's draft scheme",
            treatments="as discussed in the case",
            guideline="as cited in the case",
        )
        chat = [{"role": "user", "content": prompt}]
        ids: Any = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt_tokens = int(ids["input_ids"].shape[1])
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = llm.model.generate(
                **ids,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=pad,
            )
        gen_s = time.perf_counter() - started
        gen_cpu_s = time.process_time() - cpu_started
        new_tokens = int(out.shape[1]) - prompt_tokens
        rates.append(new_tokens / gen_s)
        # the backend's own call, as the planner makes it (greedy, default stop at end of turn)
        started = time.perf_counter()
        reply = llm.generate([Message(role="user", content=prompt)], max_tokens=128)
        call_s = time.perf_counter() - started
        per_case.append(
            {
                "case": name,
                "prompt_tokens": prompt_tokens,
                "new_tokens": new_tokens,
                "tokens_per_s": round(new_tokens / gen_s, 1),
                "generation_cpu_s": round(gen_cpu_s, 2),
                "generate_call_s": round(call_s, 2),
                "reply_chars": len(reply),
            }
        )
    return {
        "component": "llm",
        "model": llm.describe,
        "threads": threads,
        "convert_or_locate_s": round(convert_s, 2),
        "load_s": round(load_s, 2),
        "tokens_per_s_median": round(statistics.median(rates), 1),
        "cases": per_case,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def bench_ner(cases: list[str], threads: int, method: str) -> dict[str, Any]:
    """Load time and per-case latency of the disease-mention recogniser ``method``."""
    import torch

    from tools.ner.pubtator import PubtatorDoc
    from tools.ner.recognise import get_recognizer

    torch.set_num_threads(threads)
    started = time.perf_counter()
    recognizer = get_recognizer(method)
    load_s = time.perf_counter() - started
    per_case = []
    for name, text in _case_texts(cases):
        doc = PubtatorDoc(pmid=name, title="", abstract=text)
        recognizer.recognise([doc])  # first call pays one-off tokenizer and kernel set-up
        runs, cpu = [], []
        for _ in range(3):
            started, cpu_started = time.perf_counter(), time.process_time()
            found = recognizer.recognise([doc])[0].mentions
            runs.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        per_case.append(
            {
                "case": name,
                "chars": len(text),
                "mentions": len(found),
                "latency_s": round(statistics.median(runs), 3),
                "cpu_s": round(statistics.median(cpu), 3),
            }
        )
    return {
        "component": f"ner/{method}",
        "threads": threads,
        "load_s": round(load_s, 2),
        "cases": per_case,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _child(args: argparse.Namespace) -> None:
    if args.component == "llm":
        result = bench_llm(args.model, args.cases, args.threads)
    else:
        result = bench_ner(args.cases, args.threads, args.component.partition("/")[2])
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    """Run each component in its own process and print one JSON line per component."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="transformers model directory (default: the converted SmolLM2 default)")
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="case files relative to the repository")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 at most; 1 is faster on a busy machine)")
    ap.add_argument("--only", choices=["llm", "ner/model", "ner/ensemble"], action="append")
    ap.add_argument("--component", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.component:
        _child(args)
        return
    for component in args.only or ["ner/model", "ner/ensemble", "llm"]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--component", component, "--threads", str(args.threads)]
        cmd += ["--cases", *args.cases] + (["--model", args.model] if args.model else [])
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{component}: failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
            continue
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
