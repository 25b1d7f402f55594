"""``hybridjet ask --run runs/qa "question"``: answer with a fine-tuned text run (prints only the new text)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``ask`` command."""
    p = subparsers.add_parser("ask", help="Answer a question with a text run (hybridjet sft fit)")
    p.add_argument("question", help="the question (or the prompt text of a completion run)")
    p.add_argument("--run", required=True, help="run directory, e.g. runs/qa")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.add_argument("--base", action="store_true", help="answer with the base model (adapter disabled)")
    p.set_defaults(handler=_ask)


def _ask(args: argparse.Namespace) -> int:
    from hybridjet.errors import HybridjetError
    from hybridjet.text.api import TextModel, check_generation

    check_generation(args.temperature, args.top_p, args.max_new_tokens)  # before the model loads
    if not args.question.strip():
        raise HybridjetError("QUESTION: expected a question, got an empty text")
    tm = TextModel.from_pretrained(args.run)
    kwargs = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens}
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    if args.base:
        with tm.base_model():
            print(tm.ask(args.question, **kwargs))
    else:
        print(tm.ask(args.question, **kwargs))
    return 0
