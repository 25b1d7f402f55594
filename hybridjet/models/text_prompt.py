"""The text-prompt baseline: the same LLM and LoRA read the event written out as text and answer with a label word.

:class:`TextPromptConfig` is the architecture (what a run records); :class:`TextPromptNet` the ``nn.Module``:
causal-LM loss on the answer word; scored by the logit difference of the two label words' first tokens at the answer
position (a continuous score for ROC curves, no generation needed); greedy generation + parsing as the predecessor
did, for its accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.dense import densify_backbone
from hybridjet.models.config import ArchConfig
from hybridjet.models.formatters import PREDECESSOR_TEMPLATE, get_formatter
from hybridjet.models.prompt import DEFAULT_QUESTION, DEFAULT_SYSTEM, EVENT_SLOT, chat_prompt
from hybridjet.runtime import Runtime, load_llm


@dataclass(frozen=True)
class TextPromptConfig(ArchConfig):
    """The text baseline's architecture.

    Args:
        model, lora, lora_r, lora_alpha, lora_dropout: the LLM and its LoRA, as for the hybrid.
        formatter: ``compact`` (rounded pT, η, m per jet, Δφ, particle count) or ``predecessor`` (px, py, pz, E with
            10 decimals inside ``[INST] … [/INST]``, as the Mistral-7B notebook did).
        labels: the answer words for (signal, background).
        system_prompt, question: the chat prompt, with the event text in the question's ``<<EVENT>>`` slot.
        max_length: longest prompt in tokens; longer prompts are an error, not silently cut.
        init, init_seed: ``pretrained`` or ``random`` weights (the same architecture drawn anew: what pretraining
            adds to reading numbers as text), as for the hybrid.
        llm_layers: the LLM's first that many decoder layers only (``None``: all).
    """

    model: str = "smollm2"
    lora: str | None = "attn"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    formatter: str = "compact"
    labels: tuple[str, str] = ("signal", "background")
    system_prompt: str | None = DEFAULT_SYSTEM
    question: str = DEFAULT_QUESTION
    max_length: int = 512
    init: str = "pretrained"
    init_seed: int = 0
    llm_layers: int | None = None

    def __post_init__(self) -> None:
        get_formatter(self.formatter)  # one line for an unknown formatter, before the LLM loads
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(self.labels) != 2:
            raise HybridjetError(f"labels: expected two words (signal, background), got {list(self.labels)}")
        checks.integer("max_length", self.max_length, 8, 1 << 20)
        if not isinstance(self.question, str) or self.question.count(EVENT_SLOT) != 1:
            raise HybridjetError(f"question: expected a text with one {EVENT_SLOT!r} slot for the event, got "
                                 f"{self.question!r}")
        self.check_lora()
        self.check_backbone()


class TextPromptNet(nn.Module):
    """The LLM reading events as text (see the module docstring)."""

    def __init__(self, config: TextPromptConfig, runtime: Runtime | None = None) -> None:
        super().__init__()
        self.config, self.runtime = config, runtime or Runtime()
        self.format_event = get_formatter(config.formatter)
        self.backbone = load_llm(config.model, config.lora_spec(), self.runtime, **config.backbone_settings())
        self.llm = self.backbone.model
        self.tokenizer = self.backbone.tokenizer
        template = self.prompt_template()
        self.answer_ids = [self._answer_tokens(template, word) for word in config.labels]
        first = [ids[0] for ids in self.answer_ids]
        if first[0] == first[1]:
            raise HybridjetError(f"labels: {config.labels[0]!r} and {config.labels[1]!r} start with the same token; "
                                 "choose other words")
        self.register_buffer("label_token_ids", torch.tensor(first), persistent=False)
        self.to(next(self.llm.parameters()).device)

    @property
    def device(self) -> torch.device:
        return self.label_token_ids.device

    def densify(self, dtype: torch.dtype) -> None:
        """Scoring only: the 4-bit (+ LoRA) LLM replaced by a dense copy in ``dtype`` (LoRA merged in fp32, a branch in bf16)."""
        self.backbone = densify_backbone(self.backbone, dtype)
        self.llm = self.backbone.model

    # ---- prompts -----------------------------------------------------------------------------------------------
    def prompt_template(self) -> str:
        """The prompt with ``<<EVENT>>`` where the event text goes, ending where the answer starts."""
        if self.config.formatter == "predecessor":
            bos = self.tokenizer.bos_token or ""
            return bos + PREDECESSOR_TEMPLATE.format(event=EVENT_SLOT)
        return chat_prompt(self.tokenizer, self.config.question, self.config.system_prompt)

    def _answer_tokens(self, template: str, word: str) -> list[int]:
        prompt = template.replace(EVENT_SLOT, "x")
        sep = " " if self.config.formatter == "predecessor" else ""
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
        if longest > self.config.max_length:
            raise HybridjetError(f"max_length: an event prompt has {longest} tokens, more than max_length="
                                 f"{self.config.max_length}; raise it or use a more compact formatter")
        rows, targets = [], []
        for ids, label in zip(prompts, batch["label"].tolist(), strict=True):
            answer = self.answer_ids[0 if label > 0.5 else 1] if with_answer else []
            rows.append(ids + answer)
            targets.append([0] * len(ids) + [1] * len(answer))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id  # load_tokenizer guarantees one (ensure_pad_token)
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

    def loss(self, batch: dict[str, torch.Tensor], pos_weight: float | None = None) -> torch.Tensor:
        """Mean cross entropy over the answer tokens; ``pos_weight`` weighs the signal events' tokens."""
        enc = self._encode(batch, with_answer=True)
        hidden = self._hidden(enc)
        # position t predicts token t+1: gather only the answer positions before the vocabulary projection
        predict_from = enc["target"][:, 1:]
        h = hidden[:, :-1][predict_from]
        y = enc["input_ids"][:, 1:][predict_from]
        logits = self._lm_head()(h.to(self._lm_head().weight.dtype)).float()
        per_token = F.cross_entropy(logits, y, reduction="none")
        if pos_weight is not None:
            row_of = predict_from.nonzero()[:, 0]
            sig = batch["label"].to(self.device)[row_of] > 0.5
            per_token = per_token * torch.where(sig, torch.tensor(pos_weight, device=self.device), 1.0)
        return per_token.mean()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B]: the logit difference of the two label words."""
        return self.score(batch)

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
        sig, bkg = (w.lower() for w in self.config.labels)
        if word.startswith(sig):
            return 1
        if word.startswith(bkg):
            return 0
        return None
