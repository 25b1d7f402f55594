"""``hybridjet sft eval``: loss, perplexity and ROUGE-L of a text run on a file, base model vs adapter."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.io_utils import check_writable, write_json
from hybridjet.text.api import TextModel
from hybridjet.text.formats import Example, extract_response, read_examples


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (``rouge-score``, stemming on) of predictions against references."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not predictions:
        raise HybridjetError("ROUGE-L needs as many predictions as references (and at least one)")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
    return float(sum(scores) / len(scores))


def _prompt_of(example: Example) -> str | list[dict[str, str]]:
    return example.prompt_messages() if example.is_chat else example.prompt


def score_model(
    tm: Any, examples: Sequence[Example], max_new_tokens: int, batch_size: int, max_length: int | None,
    progress: bool = False, static_cache: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Loss/perplexity and ROUGE-L (greedy generations, timed) of ``tm`` on ``examples``."""
    result: dict[str, Any] = dict(tm.loss_on_examples(examples, batch_size=batch_size, max_length=max_length))
    prompts = [_prompt_of(ex) for ex in examples]
    if any(not ex.is_chat and not ex.prompt for ex in examples):
        result["rougeL"] = None  # plain texts without a prompt/continuation split: nothing to generate from
        return result, []
    started = time.perf_counter()
    generations = tm.generate_batch(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress,
                                    static_cache=static_cache)
    result["generation_examples_per_s"] = len(prompts) / max(time.perf_counter() - started, 1e-9)
    references = [ex.reference() for ex in examples]
    result["rougeL"] = rouge_l(generations, references)
    if any(ex.meta.get("format") == "cot" for ex in examples):
        result["rougeL_response"] = rouge_l(
            [extract_response(g) for g in generations], [extract_response(r) for r in references]
        )
    return result, generations


EVAL_KIND = "hybridjet-sft-eval"


def is_eval_file(path: Path) -> bool:
    """Whether ``path`` holds an evaluation :func:`evaluate_run` wrote (the only file its output replaces)."""
    record = json.loads(path.read_text())
    return isinstance(record, dict) and (record.get("kind") == EVAL_KIND or
                                         {"run", "data", "adapter", "evaluated"} <= record.keys())


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    max_new_tokens: int = 128,
    limit: int | None = None,
    batch_size: int | None = None,
    include_base: bool = True,
    out: str | os.PathLike[str] | None = None,
    model: Any = None,
    base_model: str | None = None,
    progress: bool = False,
    dense: bool | None = None,
    static_cache: bool = False,
) -> dict[str, Any]:
    """Evaluate ``run_dir`` on ``data`` (before = base model, after = adapter); writes ``<run>/eval.json``.
    ``model``: a loaded :class:`TextModel`; ``base_model``: the base model's path here, if not the recorded one;
    ``batch_size``: default 64 on a GPU, 8 on a CPU; ``dense``: score with a dense copy, the 4-bit base
    dequantized once (:meth:`TextModel.densify_for_inference`; the same function up to the compute dtype's
    rounding; a given ``model`` is changed in place); ``None``: for a quantized model whose dense weights take at
    most half the device's free memory (:func:`~hybridjet.llm.dense.dense_copy_fits`);
    ``static_cache``: generate with a fixed-size KV cache (:meth:`TextModel.generate_batch`)."""
    if batch_size is not None and batch_size < 1:  # before the model loads
        raise HybridjetError(f"--batch-size: expected a positive integer, got {batch_size}")
    checks.integer("--max-new-tokens", max_new_tokens, 1, 1 << 16)
    checks.integer("--limit", limit, 1, optional=True)
    out_path = Path(out) if out is not None else Path(run_dir) / "eval.json"
    check_writable(out_path, inputs=(data,), replaces=is_eval_file, what="an evaluation hybridjet wrote")
    tm = model if model is not None else TextModel.from_pretrained(run_dir, model=base_model)
    if batch_size is None:
        batch_size = 64 if tm.device.type == "cuda" else 8
    from hybridjet.llm.dense import dense_copy_fits, merges_lora

    if dense is None:
        dense = dense_copy_fits(tm.model, tm.backbone.dtype, tm.device)
    settings = tm.config.get("data") or {}
    examples, report = read_examples(
        data,
        format=settings.get("format") or "auto",
        fields=settings.get("fields") or {},
        prompt_words=settings.get("prompt_words"),
        prompt_fraction=settings.get("prompt_fraction"),
    )
    if limit is not None:
        examples = examples[: int(limit)]
    max_length = settings.get("max_length")
    result: dict[str, Any] = {
        "kind": EVAL_KIND,
        "run": str(run_dir),
        "data": str(data),
        "records": report.n_read,
        "evaluated": len(examples),
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "dense": dense,
        "static_cache": static_cache,
        "device": str(tm.device),
        "model": tm.config.get("model"),
    }
    if dense and not merges_lora(tm.backbone.dtype):
        tm.densify_for_inference()  # the adapter stays a branch: the base column runs on the dense copy too
    if include_base:  # before a merging dense copy, which has no base model left
        with tm.base_model():
            before, base_generations = score_model(tm, examples, max_new_tokens, batch_size, max_length, progress,
                                                   static_cache)
        result["base"] = before
    if dense:
        tm.densify_for_inference()
    after, generations = score_model(tm, examples, max_new_tokens, batch_size, max_length, progress, static_cache)
    result["adapter"] = after
    result["samples"] = [
        {
            "prompt": ex.prompt_messages()[-1]["content"] if ex.is_chat else ex.prompt,
            "reference": ex.reference(),
            "adapter": generations[i] if generations else None,
            **({"base": base_generations[i] if base_generations else None} if include_base else {}),
        }
        for i, ex in enumerate(examples[:5])
    ]
    write_json(out_path, result, indent=2)
    result["written"] = str(out_path)
    return result


def format_table(result: dict[str, Any]) -> str:
    """A before/after table of an :func:`evaluate_run` result."""
    cols = [c for c in ("base", "adapter") if c in result]
    rows = [("eval loss", "loss", "{:.4f}"), ("perplexity", "perplexity", "{:.3f}"), ("ROUGE-L F", "rougeL", "{:.4f}"),
            ("generated examples/s", "generation_examples_per_s", "{:.2f}")]
    if any("rougeL_response" in result[c] for c in cols):
        rows.append(("ROUGE-L F (response)", "rougeL_response", "{:.4f}"))
    lines = [
        f"{result['data']}: {result['evaluated']} examples, "
        f"{result[cols[-1]].get('tokens', 0)} scored tokens, greedy, max_new_tokens={result['max_new_tokens']}",
        f"on {result.get('device', '?')}, batch {result.get('batch_size', '?')}"
        + (", a dense copy of the adapted model" if result.get("dense") else "")
        + (", static KV cache" if result.get("static_cache") else ""),
        f"{'metric':<22}" + "".join(f"{c + (' (before)' if c == 'base' else ' (after)'):>18}" for c in cols),
    ]
    for label, key, fmt in rows:
        values = []
        for c in cols:
            v = result[c].get(key)
            values.append(f"{(fmt.format(v) if v is not None else 'n/a'):>18}")
        lines.append(f"{label:<22}" + "".join(values))
    if "written" in result:
        lines.append(f"written: {result['written']}")
    return "\n".join(lines)
