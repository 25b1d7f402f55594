"""Text mode: SFT of the LLM backbone on Q&A, chain-of-thought, plain-text and chat data.

``formats`` (reading records), ``dataset`` (chat template + label masking, collator), ``datamodule``,
``loss`` (memory-safe token loss), ``sft`` (``TextSFT``), ``lightning_cli`` (``hybridjet sft``), ``evaluate``
(``sft eval``), ``api`` (``TextModel``), ``cli`` (``hybridjet ask``).
"""
