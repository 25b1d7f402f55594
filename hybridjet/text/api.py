"""``TextModel``: a fine-tuned text run (base model + LoRA adapter + saved chat template / system prompt).

    from hybridjet import TextModel
    tm = TextModel.from_pretrained("runs/qa")
    print(tm.ask("What is the mass of the W boson?"))
    tm.perplexity(["The Higgs boson decays to two photons."])
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.adapters import load_adapter, read_adapter_meta
from hybridjet.llm.backbone import load_backbone, load_tokenizer
from hybridjet.llm.chat import render_chat
from hybridjet.text.dataset import SFTCollator, encode_examples, pad_token_id, with_system
from hybridjet.text.export import ADAPTER_DIR, TOKENIZER_DIR, read_text_config
from hybridjet.text.formats import Example
from hybridjet.text.loss import token_loss_sum

#: the most new tokens one generation asks for (longer than any context these models have)
MAX_NEW_TOKENS = 1 << 16


def check_generation(temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int = 128, batch_size: int = 1,
                     min_new_tokens: int = 0) -> None:
    """One line for generation settings that cannot be meant (before any model loads, where a caller can):
    a temperature that is negative, NaN or infinite, a top-p outside (0, 1], token counts that are not integers
    within their range."""
    checks.non_negative("temperature", temperature)
    checks.positive("top_p", top_p)
    if top_p > 1:
        raise HybridjetError(f"top_p: expected a number in (0, 1], got {top_p!r}")
    checks.integer("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    checks.integer("batch_size", batch_size, 1)
    checks.integer("min_new_tokens", min_new_tokens, 0, max_new_tokens)


class TextModel:
    """A causal LM with a fine-tuned adapter, its tokenizer/chat template and system prompt."""

    def __init__(self, backbone: Any, config: dict[str, Any], run_dir: str | Path | None = None) -> None:
        self.backbone = backbone
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.tokenizer = backbone.tokenizer
        self.system_prompt: str | None = config.get("system_prompt")
        self.format: str = (config.get("data") or {}).get("format") or "qa"
        # the template text the run was trained with (None: the tokenizer's own), as recorded by TextDataModule
        self.chat_template: str | None = (config.get("data") or {}).get("chat_template")
        self.dense = False  # True after densify_for_inference

    @classmethod
    def from_pretrained(
        cls,
        run_dir: str | os.PathLike[str],
        quantization: str | None = None,
        device: Any = None,
        dtype: Any = None,
        model: str | None = None,
    ) -> TextModel:
        """Load ``run_dir`` (written by ``hybridjet sft fit``): base model + adapter + saved tokenizer; ``model``:
        the base model's path here when the recorded one is not on this machine (its weights' hash must match)."""
        run_dir = Path(run_dir)
        config = read_text_config(run_dir)
        read_adapter_meta(run_dir / ADAPTER_DIR)  # every file of the run checked before the base model loads
        model_name = model or config.get("model") or (config.get("base_identity") or {}).get("name") or "smollm2"
        quant = quantization or config.get("quantization") or "auto"
        if quant != "none" and not torch.cuda.is_available() and quantization is None:
            quant = "auto"  # a run trained 4-bit on a GPU, used on a CPU
        backbone = load_backbone(model_name, quantization=quant, lora=None, dtype=dtype, device=device)
        if (run_dir / TOKENIZER_DIR).is_dir():
            backbone.tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
        backbone = load_adapter(backbone, run_dir / ADAPTER_DIR)
        backbone.model.eval()
        return cls(backbone, config, run_dir)

    @property
    def model(self) -> Any:
        """The (peft) model."""
        return self.backbone.model

    @property
    def device(self) -> torch.device:
        """Device of the model's input embeddings."""
        return self.backbone.input_embeddings.weight.device

    def densify_for_inference(self, dtype: torch.dtype | None = None) -> TextModel:
        """Inference only, in place: the 4-bit base dequantized once into dense weights in the compute dtype
        (or ``dtype``), so generation runs plain matmuls instead of per-token dequantization; the same function up
        to that dtype's rounding. In fp32 the adapter is merged into the weights (the base model is then gone); in
        bf16/fp16 it stays a branch, which :meth:`base_model` switches off."""
        from hybridjet.llm.dense import densify_backbone

        if not self.dense:
            self.backbone = densify_backbone(self.backbone, dtype or self.backbone.dtype)
            self.dense = True
        return self

    @contextlib.contextmanager
    def base_model(self) -> Iterator[TextModel]:
        """Within the block, the adapter is disabled (the base model answers); also in a dense copy whose adapter
        stays a branch (bf16/fp16), not in one it was merged into (fp32)."""
        if self.dense:
            from hybridjet.llm.dense import adapter_branches, adapters_disabled

            if not adapter_branches(self.model):
                raise HybridjetError("this model is a dense inference copy with the adapter merged in: the base "
                                     "model is gone (use the base model before densify_for_inference)")
            with adapters_disabled(self.model):
                yield self
            return
        disable = getattr(self.model, "disable_adapter", None)
        if disable is None:
            yield self
            return
        with disable():
            yield self

    # ---------------------------------------------------------------------------------------------- prompts
    @property
    def is_chat(self) -> bool:
        """Whether prompts go through the chat template (all formats but ``completion``)."""
        return self.format != "completion"

    def prompt_text(self, question: str | list[dict[str, str]]) -> str:
        """The model input for ``question`` (a string, or a list of chat messages)."""
        if not self.is_chat:
            if not isinstance(question, str):
                raise HybridjetError("a completion run takes a text prompt, not chat messages")
            return question
        messages = [{"role": "user", "content": question}] if isinstance(question, str) else list(question)
        return render_chat(self.tokenizer, with_system(messages, self.system_prompt), add_generation_prompt=True,
                           template=self.chat_template)

    def _stop_ids(self) -> list[int]:
        tok = self.tokenizer
        ids = {tok.eos_token_id}
        for name in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            tid = tok.convert_tokens_to_ids(name) if name in tok.get_vocab() else None
            if tid is not None:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    # ------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate_batch(
        self,
        prompts: Sequence[str | list[dict[str, str]]],
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        templated: bool = False,
        seed: int | None = None,
        progress: bool = False,
        static_cache: bool = False,
        min_new_tokens: int = 0,
    ) -> list[str]:
        """Generate for each prompt, ``batch_size`` at a time (left padding, the KV cache); returns only the new text
        of each. ``prompts`` are questions (or message lists) to template, or model-ready texts with
        ``templated=True``. ``temperature=0`` is greedy decoding; ``progress`` shows a bar. ``static_cache``: a
        KV cache of fixed size, whose decoding step transformers compiles on a GPU: every batch then has one shape
        (prompts left-padded to the longest, the last batch filled up with repeats), so it compiles once.
        ``min_new_tokens``: no stop before that many new tokens (``= max_new_tokens``: fixed-length answers, for
        timing)."""
        check_generation(temperature, top_p, max_new_tokens, batch_size, min_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
        texts = [p if templated else self.prompt_text(p) for p in prompts]
        if not texts:
            return []
        tok = self.tokenizer
        # batches of similar prompt lengths (less left padding to run through), answers returned in the given order
        lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        texts = [texts[i] for i in order]
        padding: dict[str, Any] = {"padding": True}
        if static_cache:  # one input shape for all batches: one compilation of the decoding step
            padding = {"padding": "max_length", "max_length": max(lengths)}
            batch_size = min(batch_size, len(texts))
        outputs: list[str] = []
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, unit="batch", desc=f"generating {len(texts)} answers")
        for start in starts:
            chunk = texts[start : start + batch_size]
            n_real = len(chunk)
            if static_cache:
                chunk = chunk + [chunk[-1]] * (batch_size - n_real)
            enc = tok(chunk, return_tensors="pt", padding_side="left", add_special_tokens=False, **padding)
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "pad_token_id": pad_token_id(tok)}
            if min_new_tokens:
                kwargs["min_new_tokens"] = int(min_new_tokens)
            kwargs["eos_token_id"] = self._stop_ids()
            if static_cache:
                kwargs["cache_implementation"] = "static"
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            out = self.model.generate(**enc, **kwargs)
            new = out[:n_real, enc["input_ids"].shape[1] :]
            outputs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        answers = [""] * len(outputs)
        for i, text in zip(order, outputs, strict=True):
            answers[i] = text
        return answers

    def ask(self, question: str, temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int = 128) -> str:
        """Answer ``question`` with the saved system prompt and chat template; only the new text is returned."""
        if not isinstance(question, str) or not question.strip():
            raise HybridjetError("the question is empty")
        return self.generate_batch([question], temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)[0]

    # ------------------------------------------------------------------------------------------- perplexity
    @torch.no_grad()
    def loss_on_examples(
        self, examples: Sequence[Example], batch_size: int = 8, max_length: int | None = None
    ) -> dict[str, float]:
        """Token-weighted loss / perplexity on the learned tokens of ``examples`` (same masking as training);
        examples longer than ``max_length`` tokens are dropped and counted."""
        encoded = encode_examples(
            examples, self.tokenizer, max_length=max_length, system_prompt=self.system_prompt, name="eval data",
            chat_template=self.chat_template,
        )
        checks.integer("batch_size", batch_size, 1)
        collate = SFTCollator(pad_token_id(self.tokenizer), "right")
        total, count = 0.0, 0
        for start in range(0, len(encoded), batch_size):
            batch = {k: v.to(self.device) for k, v in collate(encoded[start : start + batch_size]).items()}
            s, n = token_loss_sum(self.model, batch)
            total += float(s)
            count += int(n)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count, "examples": len(encoded)}

    def perplexity(self, texts: str | Sequence[str], batch_size: int = 8) -> float:
        """Perplexity of plain ``texts`` (every token after the first is scored, an EOS is appended)."""
        if isinstance(texts, str):
            texts = [texts]
        examples = [Example(f"text {i}", prompt="", target=t) for i, t in enumerate(texts) if t.strip()]
        if not examples:
            raise HybridjetError("no text to score")
        return self.loss_on_examples(examples, batch_size)["perplexity"]
