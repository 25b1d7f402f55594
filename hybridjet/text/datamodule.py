"""``TextDataModule``: files -> examples -> splits -> tokenised, masked, padded batches for :class:`TextSFT`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from hybridjet import checks
from hybridjet.data.batches import EpochBatches, trainer_position
from hybridjet.errors import HybridjetError
from hybridjet.llm.chat import effective_template, resolve_chat_template
from hybridjet.text.dataset import (
    SFTCollator,
    SFTDataset,
    encode_examples,
    pad_token_id,
    split_examples,
)
from hybridjet.text.formats import Example, read_examples
from hybridjet.text.packing import PackedCollator


@dataclass(frozen=True)
class RecordSettings:
    """How records become examples, beyond their format.

    Args:
        prompt_words / prompt_fraction: completion format: first N words (or fraction) of each text as the prompt.
        skip_invalid: skip (and count) malformed records instead of stopping at the first one.
    """

    fields: dict[str, str] | None = None
    prompt_words: int | None = None
    prompt_fraction: float | None = None
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        checks.integer("data.records.prompt_words", self.prompt_words, 1, optional=True)  # not -1 or 0 as 1


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are laid out and loaded.

    Args:
        eval_batch_size: examples per evaluation batch (default: ``batch_size``).
        num_workers: worker processes of the evaluation loaders.
        packing: padding-free rows, several examples each (:mod:`hybridjet.text.packing`); ``None`` (default):
            wherever the model keeps packed examples apart, checked on the model once (else padded rows, said once).
        pack_tokens: the length of a packed row; default: the model's choice (a whole batch in one row with
            FlexAttention, ``max_length`` with a dense mask).
    """

    eval_batch_size: int | None = None
    num_workers: int = 0
    packing: bool | None = None
    pack_tokens: int | None = None

    def __post_init__(self) -> None:
        checks.integer("data.loading.eval_batch_size", self.eval_batch_size, 1, optional=True)
        checks.integer("data.loading.num_workers", self.num_workers, 0)


class TextDataModule(L.LightningDataModule):
    """Text SFT data.

    Args:
        train_path: JSON / JSONL / Parquet file (or ``hf:NAME`` with ``datasets`` installed).
        val_path: held-out file; if not given, ``val_ratio`` (seeded) or ``val_first`` of ``train_path`` is held out.
        test_path: optional test file (else ``test_ratio`` of ``train_path``).
        format: ``auto``, ``qa``, ``cot``, ``completion`` or ``chat``.
        system_prompt: system turn prepended to chat-like examples (saved with the adapter).
        chat_template: how chat-like examples (qa, cot, chat) become text: null (default) for the model's own chat
            template, else the plain one (``### User:`` / ``### Assistant:`` turns, eos after each answer:
            :data:`hybridjet.llm.chat.PLAIN_TEMPLATE`, for base models); ``plain`` for the plain one whatever the
            model; or a Jinja template, as a file path or the text itself.  The template used is recorded with
            the run (``text_config.yaml``), so ``hybridjet ask`` and ``TextModel`` use the same one.
        max_length: longer examples (in tokens, after templating) are dropped and counted.
        train_on_prompt: learn the prompt tokens too (default: assistant / continuation tokens only).
        val_ratio / test_ratio / val_first / seed: splitting of ``train_path``.
        batch_size: examples per training batch.
        records: field names, the completion prompt, malformed records (:class:`RecordSettings`).
        loading: evaluation batches, workers, packing (:class:`LoaderSettings`).
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        format: str = "auto",
        system_prompt: str | None = None,
        chat_template: str | None = None,
        max_length: int = 512,
        train_on_prompt: bool = False,
        val_ratio: float = 0.1,
        test_ratio: float = 0.0,
        val_first: int | None = None,
        seed: int = 0,
        batch_size: int = 4,
        records: RecordSettings | None = None,
        loading: LoaderSettings | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_path = train_path
        self.val_path = val_path
        self.test_path = test_path
        self.format = format
        # a config's sections may arrive as mappings (a checked config read as a dict, before the model loads)
        records = RecordSettings(**records) if isinstance(records, dict) else records or RecordSettings()
        loading = LoaderSettings(**loading) if isinstance(loading, dict) else loading or LoaderSettings()
        self.fields = dict(records.fields or {})
        self.system_prompt = system_prompt
        self.chat_template = resolve_chat_template(chat_template)  # a bad setting: one line, before the model loads
        self.max_length = max_length
        self.train_on_prompt = train_on_prompt
        self.val_ratio = val_ratio
        self.test_ratio = test_ratio
        self.val_first = val_first
        self.seed = seed
        self.prompt_words = records.prompt_words
        self.prompt_fraction = records.prompt_fraction
        self.skip_invalid = records.skip_invalid
        self.batch_size = batch_size
        self.eval_batch_size = batch_size if loading.eval_batch_size is None else loading.eval_batch_size
        self.num_workers = loading.num_workers
        self.packing = loading.packing
        self.pack_tokens = pack_tokens = loading.pack_tokens
        self.packs: bool = False  # decided in setup, from ``packing`` and the model
        self._packing_decided: bool | None = None
        self._row_tokens = max_length
        self.tokenizer: Any = None
        self.examples: dict[str, list[Example]] = {}
        self.datasets: dict[str, SFTDataset] = {}
        self.detected_format: str | None = None
        checks.integer("data.batch_size", batch_size, 1)  # eval_batch_size: checked by LoaderSettings
        checks.integer("data.max_length", max_length, 1)
        if pack_tokens is not None and (isinstance(pack_tokens, bool) or not isinstance(pack_tokens, int)
                                        or pack_tokens < max_length):
            raise HybridjetError(f"data.loading.pack_tokens: expected null or an integer >= max_length ({max_length}), "
                                 f"got {pack_tokens!r}")

    # ------------------------------------------------------------------------------------------------ reading
    def read(self, path: str) -> list[Example]:
        """Read and normalise one file with this module's format settings (prints a one-line summary)."""
        examples, report = read_examples(
            path,
            format=self.format,
            fields=self.fields,
            prompt_words=self.prompt_words,
            prompt_fraction=self.prompt_fraction,
            skip_invalid=self.skip_invalid,
        )
        if report.skipped:
            print(report.summary(path))
        if examples and self.detected_format is None:
            self.detected_format = examples[0].meta.get("format")
        return examples

    def load_examples(self) -> dict[str, list[Example]]:
        """Examples per split (``train``, ``val``, ``test``), without tokenising."""
        if self.examples:
            return self.examples
        train = self.read(self.train_path)
        if self.val_path is not None:
            splits = {"train": train, "val": self.read(self.val_path), "test": []}
            if self.test_ratio > 0:
                more = split_examples(train, val_ratio=0.0, test_ratio=self.test_ratio, seed=self.seed)
                splits["train"], splits["test"] = more["train"], more["test"]
        else:
            splits = split_examples(train, self.val_ratio, self.test_ratio, self.val_first, self.seed)
        if self.test_path is not None:
            splits["test"] = self.read(self.test_path)
        self.examples = splits
        return splits

    # ----------------------------------------------------------------------------------------------- lightning
    def attach_tokenizer(self, tokenizer: Any) -> None:
        """Use ``tokenizer`` (normally the model's) for templating and tokenising."""
        self.tokenizer = tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            module = self.trainer.lightning_module if self.trainer is not None else None
            tokenizer = getattr(module, "tokenizer", None)
            if tokenizer is None:
                raise HybridjetError("TextDataModule needs a tokenizer: attach_tokenizer(...) or a TextSFT model")
            self.tokenizer = tokenizer
        if self._packing_decided is None:
            self._packing_decided = self.packs = self._decide_packing()
            module = self.trainer.lightning_module if self.trainer is not None else None
            hint = getattr(module, "packed_row_tokens", None)
            self._row_tokens = hint(self.max_length) if hint is not None else self.max_length
        if self.datasets:
            return
        self.datasets = self.encode(self.tokenizer)
        counts = ", ".join(f"{k}={len(v)}" for k, v in self.datasets.items())
        print(f"text data: {counts} examples (format {self.detected_format}, max_length {self.max_length})")

    def encode(self, tokenizer: Any) -> dict[str, SFTDataset]:
        """Every non-empty split tokenised and masked with ``tokenizer`` (one line for data that cannot train:
        a malformed record, a split every record of which is dropped)."""
        datasets = {}
        for split, examples in self.load_examples().items():
            if not examples:
                continue
            encoded = encode_examples(
                examples,
                tokenizer,
                max_length=self.max_length,
                system_prompt=self.system_prompt,
                train_on_prompt=self.train_on_prompt,
                name=f"{split} split",
                chat_template=self.chat_template,
            )
            datasets[split] = SFTDataset(encoded)
        if "train" not in datasets:
            raise HybridjetError(f"{self.train_path}: no training records")
        return datasets

    def _decide_packing(self) -> bool:
        """Pack when asked to (or, by default, always) and the model keeps packed examples apart; say so once."""
        if self.packing is False:
            return False
        module = self.trainer.lightning_module if self.trainer is not None else None
        check = getattr(module, "packing_check", None)
        if check is None:  # no model to check (a module used on its own): padded rows
            return False
        exact, why = check()
        if not exact:
            print(f"text data: padded rows, not packed: {why}")
        return exact

    def collator(self, padding_side: str = "right") -> SFTCollator | PackedCollator:
        """The loss batches' collator: packed rows when :attr:`packs`, else padded ones (right padding for the loss,
        left for generation)."""
        if self.packs and padding_side == "right":
            return PackedCollator(pad_token_id(self.tokenizer), row_tokens=self.pack_tokens or self._row_tokens)
        return SFTCollator(pad_token_id(self.tokenizer), padding_side=padding_side)

    def _dataset(self, split: str) -> SFTDataset:
        if split not in self.datasets:
            raise HybridjetError(f"no {split} data (set {split}_path or a {split} ratio)")
        return self.datasets[split]

    def _loader(self, split: str) -> DataLoader:
        """Evaluation batches of ``split``, in order."""
        return DataLoader(self._dataset(split), batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.collator("right"), num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches, one permutation per (seed, epoch), resumable mid-epoch
        (:class:`hybridjet.data.batches.EpochBatches` following the trainer's progress); collated in this process,
        so that the batches drawn are the batches trained on."""
        items = self._dataset("train").items
        collate = self.collator("right")
        trainer = self.trainer
        position = (lambda: trainer_position(trainer)) if trainer is not None else None
        batches = EpochBatches(len(items), self.batch_size, self.seed,
                               lambda rows: collate([items[i] for i in rows]), position)
        return DataLoader(batches, batch_size=None, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def text_settings(self) -> dict[str, Any]:
        """The settings a saved run needs to template new inputs the same way (written to text_config.yaml)."""
        return {
            "format": self.detected_format or self.format,
            "fields": self.fields,
            "system_prompt": self.system_prompt,
            # the template text used (None: the tokenizer's own, saved with it); the plain default is written out,
            # so that the run keeps rendering as it was trained
            "chat_template": (effective_template(self.tokenizer, self.chat_template)
                              if self.tokenizer is not None else self.chat_template),
            "max_length": self.max_length,
            "prompt_words": self.prompt_words,
            "prompt_fraction": self.prompt_fraction,
        }
