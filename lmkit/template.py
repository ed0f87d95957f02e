"""The prompt template of instruction finetuning (chapter 5).

One place for the text a model sees before its answer, shared by the instruction
data set (``lmkit.instructions``, which checks that every example fits the
context) and by finetuning and answering (``lmkit.finetune``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """How an instruction (and its input, if any) becomes the prompt the answer follows."""

    prompt: str = "Q: {instruction}\n{input}\nA: "
    prompt_no_input: str = "Q: {instruction}\nA: "

    def __post_init__(self) -> None:
        for name, fields in [("prompt", {"instruction", "input"}), ("prompt_no_input", {"instruction"})]:
            used = {f for _, f, _, _ in string.Formatter().parse(getattr(self, name)) if f is not None}
            if used - fields:
                raise ValueError(f"unknown field(s) {sorted(used - fields)} in the template's {name}; it may use {sorted(fields)}")
            if "instruction" not in used:
                raise ValueError(f"the template's {name} must contain {{instruction}}")


TEMPLATE = Template()


def format_prompt(instruction: str, input: str | None = None, template: Template = TEMPLATE) -> str:
    """The prompt for ``instruction`` and its ``input`` (None: the template without input)."""
    if not instruction.strip():
        raise ValueError("the instruction is empty")
    if input is None:
        return template.prompt_no_input.format(instruction=instruction)
    return template.prompt.format(instruction=instruction, input=input)
