"""The one chat-templating rule, shared by text fine-tuning (:mod:`hybridjet.text`) and the classifiers' prompts
(:mod:`hybridjet.models.prompt`).

A conversation is rendered with, in order: an explicit template (a text run's ``data.chat_template``), the
tokenizer's own (instruct models keep theirs), else :data:`PLAIN_TEMPLATE` (base models, which have none)::

    ### System:
    You are a physicist.

    ### User:
    What is the W mass?

    ### Assistant:
    80.4 GeV</s>

The eos token closes every assistant turn, so fine-tuning learns where an answer ends; the tokenizer's bos token
starts the text when the tokenizer adds one to plain text (:func:`adds_bos`), as it would without a template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError

PLAIN_TEMPLATE = (
    "{%- if add_bos and bos_token %}{{ bos_token }}{% endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '### Assistant:\\n' + message['content'] + (eos_token or '') + '\\n\\n' }}"
    "{%- else %}{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] + '\\n\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)
PLAIN_TEMPLATE_SUMMARY = "hybridjet's plain template ('### User:' / '### Assistant:' turns, eos after each answer)"
#: the ``data.chat_template`` value naming :data:`PLAIN_TEMPLATE`
PLAIN = "plain"


def _is_jinja(text: str) -> bool:
    return "{{" in text or "{%" in text


def resolve_chat_template(setting: str | None, field: str = "data.chat_template") -> str | None:
    """The template text of a ``chat_template`` setting: None (the tokenizer's own, else the plain one), ``plain``,
    the path of a Jinja file, or the Jinja text itself; anything else is a one-line :class:`HybridjetError`."""
    if setting is None:
        return None
    if not isinstance(setting, str) or not setting.strip():
        raise HybridjetError(f"{field}: expected null, 'plain', a Jinja file or a Jinja template, got {setting!r}")
    if setting.strip().lower() == PLAIN:
        return PLAIN_TEMPLATE
    if _is_jinja(setting):
        return setting
    path = Path(setting).expanduser()
    if not path.is_file():
        raise InputFileError(setting, f"{field}: no such file, nor 'plain' or a Jinja template ({{{{ ... }}}})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"{field}: unreadable ({type(exc).__name__})") from None
    if not _is_jinja(text):
        raise InputFileError(path, f"{field}: not a Jinja chat template (no {{{{ ... }}}} or {{% ... %}})")
    return text


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts its bos token before plain text, as its post-processor does (transformers 5.2x
    does not keep ``add_bos_token`` through a save and reload; the post-processor is what encodes)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return with_specials[:1] == [bos] and without[:1] != [bos]


def has_own_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template of its own."""
    return bool(getattr(tokenizer, "chat_template", None))


def effective_template(tokenizer: Any, template: str | None = None) -> str | None:
    """The template text :func:`render_chat` uses besides the tokenizer's own: ``template``, else
    :data:`PLAIN_TEMPLATE` when the tokenizer has none, else None (the tokenizer's own)."""
    if template:
        return template
    return None if has_own_template(tokenizer) else PLAIN_TEMPLATE


def render_chat(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False,
                template: str | None = None) -> str:
    """``messages`` as text, by the rule of the module docstring; ``add_generation_prompt`` ends it where the
    assistant's answer starts.  A template that fails on them is a one-line :class:`HybridjetError`."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(
            messages, chat_template=effective_template(tokenizer, template), tokenize=False,
            add_generation_prompt=add_generation_prompt, add_bos=adds_bos(tokenizer),
        )
    except (TemplateError, ValueError) as exc:
        raise HybridjetError(f"the chat template cannot render this conversation ({type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0]}); set data.chat_template") from None
