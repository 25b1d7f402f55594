"""TextPromptClassifier: the same LLM and LoRA read the event written out as text and answer with a label word."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hybridjet.errors import HybridjetError
from hybridjet.models.base import EventClassifier
from hybridjet.models.formatters import PREDECESSOR_TEMPLATE, get_formatter
from hybridjet.models.hybrid import decoder_of
from hybridjet.models.prompt import DEFAULT_QUESTION, DEFAULT_SYSTEM, EVENT_SLOT, chat_prompt


class TextPromptClassifier(EventClassifier):
    """Text-prompt baseline: causal-LM loss on the answer word; scored by the logit difference of the two label
    words' first tokens at the answer position (a continuous score for ROC curves), no generation needed.

    Args:
        formatter: ``compact`` (rounded pT, η, φ, m per jet + particle count) or ``predecessor`` (px, py, pz, E
            with 10 decimals inside ``[INST] … [/INST]``, as the Mistral-7B notebook did).
        labels: the answer words for (signal, background).
        max_length: longest prompt in tokens; longer prompts are an error, not silently cut.
    """

    model_kind = "text"

    def __init__(
        self,
        model: str = "smollm2",
        quantization: str = "auto",
        dtype: str | None = None,
        lora: str | None = "attn",
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        formatter: str = "compact",
        labels: tuple[str, str] = ("signal", "background"),
        system_prompt: str | None = DEFAULT_SYSTEM,
        question: str = DEFAULT_QUESTION,
        max_length: int = 512,
        gradient_checkpointing: bool = False,
        generate_eval: bool = False,
        lr: float = 2e-4,
        encoder_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
        class_weight: str | None = None,
        run_name: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.format_event = get_formatter(formatter)
        self.llm = self.load_llm(model, quantization, dtype, lora, lora_r, lora_alpha, lora_dropout,
                                 gradient_checkpointing)
        self.tokenizer = self.backbone.tokenizer
        template = self.prompt_template()
        self.answer_ids = [self._answer_tokens(template, word) for word in labels]
        first = [ids[0] for ids in self.answer_ids]
        if first[0] == first[1]:
            raise HybridjetError(f"labels: {labels[0]!r} and {labels[1]!r} start with the same token; choose other words")
        self.register_buffer("label_token_ids", torch.tensor(first), persistent=False)
        self._generated: list[dict[str, torch.Tensor]] = []  # generate_eval: per-event outcomes of the test pass
        self._unparseable_examples: list[str] = []
        self.follow_llm_device()

    # ---- prompts -----------------------------------------------------------------------------------------------
    def prompt_template(self) -> str:
        """The prompt with ``<<EVENT>>`` where the event text goes, ending where the answer starts."""
        if self.hparams.formatter == "predecessor":
            bos = self.tokenizer.bos_token or ""
            return bos + PREDECESSOR_TEMPLATE.format(event=EVENT_SLOT)
        return chat_prompt(self.tokenizer, self.hparams.question, self.hparams.system_prompt)

    def _answer_tokens(self, template: str, word: str) -> list[int]:
        prompt = template.replace(EVENT_SLOT, "x")
        sep = " " if self.hparams.formatter == "predecessor" else ""
        full = self.tokenizer(prompt + sep + word, add_special_tokens=False)["input_ids"]
        head = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if full[: len(head)] != head:
            raise HybridjetError(f"labels: answer {word!r} merges with the prompt's last token; choose another word")
        eos = self.tokenizer.eos_token_id
        return full[len(head):] + ([eos] if eos is not None else [])

    def prompts(self, batch: dict[str, torch.Tensor]) -> list[str]:
        """The full prompt text of every event in ``batch``."""
        template = self.prompt_template()
        # formatters read single numbers: from GPU tensors each one would be a host sync (thousands per batch)
        batch = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return [template.replace(EVENT_SLOT, self.format_event(batch, i)) for i in range(len(batch["label"]))]

    def _encode(self, batch: dict[str, torch.Tensor], with_answer: bool) -> dict[str, torch.Tensor]:
        """Left-padded token ids (prompt [+ answer]), attention mask, position ids and answer-target mask."""
        prompts = self.tokenizer(self.prompts(batch), add_special_tokens=False)["input_ids"]
        longest = max(len(p) for p in prompts)
        if longest > self.hparams.max_length:
            raise HybridjetError(f"max_length: an event prompt has {longest} tokens, more than max_length="
                                 f"{self.hparams.max_length}; raise it or use a more compact formatter")
        rows, targets = [], []
        for ids, label in zip(prompts, batch["label"].tolist(), strict=True):
            answer = self.answer_ids[0 if label > 0.5 else 1] if with_answer else []
            rows.append(ids + answer)
            targets.append([0] * len(ids) + [1] * len(answer))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        target = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (r, t) in enumerate(zip(rows, targets, strict=True)):
            input_ids[i, width - len(r):] = torch.tensor(r)
            attention[i, width - len(r):] = 1
            target[i, width - len(t):] = torch.tensor(t, dtype=torch.bool)
        answer_len = torch.tensor([sum(t) for t in targets])
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        device = self.device
        return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device),
                "position_ids": positions.to(device), "target": target.to(device), "answer_len": answer_len.to(device)}

    def _hidden(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        out = decoder_of(self.llm)(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                   position_ids=enc["position_ids"], use_cache=False)
        return out.last_hidden_state

    def _lm_head(self) -> torch.nn.Module:
        return self.llm.get_output_embeddings()

    # ---- scores and loss ---------------------------------------------------------------------------------------
    def _label_logit_diff(self, hidden_at_answer: torch.Tensor) -> torch.Tensor:
        # only the two label rows of the vocabulary projection, in fp32 so that bf16 rounding makes no ties
        weight = self._lm_head().weight[self.label_token_ids].float()  # [2, H]
        logits = hidden_at_answer.float() @ weight.T
        return logits[:, 0] - logits[:, 1]

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        enc = self._encode(batch, with_answer=False)
        return self._label_logit_diff(self._hidden(enc)[:, -1])

    def loss(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        enc = self._encode(batch, with_answer=True)
        hidden = self._hidden(enc)
        # position t predicts token t+1: gather only the answer positions before the vocabulary projection
        predict_from = enc["target"][:, 1:]
        h = hidden[:, :-1][predict_from]
        y = enc["input_ids"][:, 1:][predict_from]
        logits = self._lm_head()(h.to(self._lm_head().weight.dtype)).float()
        per_token = F.cross_entropy(logits, y, reduction="none")
        if self.hparams.class_weight == "balanced":
            row_of = predict_from.nonzero()[:, 0]
            sig = batch["label"].to(self.device)[row_of] > 0.5
            per_token = per_token * torch.where(sig, torch.tensor(self.pos_weight, device=self.device), 1.0)
        return per_token.mean()

    # ---- the predecessor's way: generate, parse, count ---------------------------------------------------------
    @torch.no_grad()
    def generate_answers(self, batch: dict[str, torch.Tensor], max_new_tokens: int = 4) -> list[str]:
        """Greedy answers (only the new text) for every event in ``batch``."""
        enc = self._encode(batch, with_answer=False)
        out = self.llm.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def parse_answer(self, text: str) -> int | None:
        """1 for the signal word, 0 for the background word, None when the answer is neither."""
        word = text.strip().lower()
        sig, bkg = (w.lower() for w in self.hparams.labels)
        if word.startswith(sig):
            return 1
        if word.startswith(bkg):
            return 0
        return None

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        if self.hparams.generate_eval:
            answers = self.generate_answers(batch)
            parsed = [self.parse_answer(a) for a in answers]
            labels = batch["label"].tolist()
            self._generated.append({
                "event_id": batch["event_id"].cpu(),
                "correct": torch.tensor([p is not None and p == int(y > 0.5) for p, y in zip(parsed, labels, strict=True)]),
                "unparseable": torch.tensor([p is None for p in parsed])})
            # a few unparseable answers, verbatim (this rank's): what the model says instead of a label word
            self._unparseable_examples += [a for a, p in zip(answers, parsed, strict=True)
                                           if p is None][: 5 - len(self._unparseable_examples)]

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._generated, self._unparseable_examples = [], []

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if not self.hparams.generate_eval:
            return
        # under DDP from every rank, each event once (the sampler repeats some to even out the ranks)
        events = self.gather_events(self._generated, empty={"correct": torch.zeros(0, dtype=torch.bool),
                                                            "unparseable": torch.zeros(0, dtype=torch.bool)})
        self._generated = []
        if events and self.trainer.is_global_zero:
            from pathlib import Path

            n = len(events["event_id"])
            self.update_metrics(Path(self.trainer.default_root_dir), generation={
                "accuracy": float(events["correct"].sum()) / n, "unparseable": int(events["unparseable"].sum()),
                "n": n, "unparseable_examples": self._unparseable_examples})
