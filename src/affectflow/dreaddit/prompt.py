"""Image prompts built from a post's text alone, fitted to the text encoder's window.

Why so strict: the published work this branch follows chose each prompt from the gold label
("stressed" vs "calm" scene), so its images carried the answer. Here :meth:`PromptFitter.fit` takes
the text and the template and nothing else (no row, no label, no subreddit), and
:func:`check_template` refuses a template with any field but ``{text}`` or with an affect or
label word, so the image can only add what the text itself implies.

Length rule (Stable Diffusion's CLIP text encoder sees 77 tokens including start and end; the
pipeline would silently cut the rest mid-word): the text is cleaned (URLs dropped, whitespace
collapsed), then whole sentences are kept from the start while the filled template fits the
window; if even the first sentence does not fit, it is cut at the last whole word that fits.
Leading sentences are kept because a Dreaddit segment sets its scene (who, where, what happened)
first; a sentence boundary keeps the prompt grammatical, which a mid-word cut does not. The
prompt stored in the index is exactly the string the encoder saw, so an image can be remade.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

# Words that would steer the image towards an affect class: a template must not contain them.
LABEL_WORD = re.compile(
    r"\b(stress\w*|distress\w*|calm\w*|relax\w*|anxi\w*|tens(e|ion)\w*|peace\w*|seren\w*|tranquil\w*|"
    r"label\w*|class\w*|happ(y|iness)|sad\w*|panic\w*|worr\w*|fear\w*|afraid|scar(y|ed)|upset\w*|"
    r"depress\w*|chaos\w*|chaotic|dark|gloom\w*|cheer\w*|joy\w*|soothing|threat\w*|danger\w*)\b",
    re.IGNORECASE,
)
_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_WS = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class TemplateError(ValueError):
    """A prompt template that could leak the label or name anything but the text."""


def check_template(template: str, what: str = "dreaddit.synthesis.template") -> None:
    """Refuse templates that are not exactly one ``{text}`` field, or that carry an affect word.

    Args:
        template: the prompt template (``str.format`` syntax).
        what: the config key, for the message.

    Raises:
        TemplateError: (a ``ValueError``) not a format string, another field than ``{text}``, a
            conversion or format spec, or an affect/label word (:data:`LABEL_WORD`).
    """
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise TemplateError(f"{what}: not a format string ({exc}): {template!r}") from None
    if [f for f, _, _ in fields] != ["text"] or fields[0][1] or fields[0][2]:
        raise TemplateError(f"{what}: must contain the field {{text}} exactly once and no other field, "
                            f"conversion or format spec; got {template!r}")
    hit = LABEL_WORD.search(template.replace("{text}", " "))
    if hit:
        raise TemplateError(f"{what}: {hit.group(0)!r} is an affect/label word; the prompt must carry only the "
                            f"post's text, or the image leaks the label: {template!r}")


def check_negative_prompt(negative: str | None) -> None:
    """Refuse a negative prompt that carries an affect/label word (it would steer the image by label).

    Raises:
        TemplateError: it names an affect/label word.
    """
    hit = LABEL_WORD.search(negative) if negative else None
    if hit:
        raise TemplateError(f"dreaddit.synthesis.negative_prompt: {hit.group(0)!r} is an "
                            f"affect/label word: {negative!r}")


def clean_text(text: str) -> str:
    """URLs dropped (they tokenise into dozens of meaningless pieces), whitespace collapsed."""
    return _WS.sub(" ", _URL.sub(" ", text)).strip()


class PromptFitter:
    """Fits texts into ``template`` within ``window`` tokens of ``tokenizer`` (start/end included)."""

    def __init__(self, template: str, tokenizer, window: int | None = None):
        check_template(template)
        self.template = template
        self.tokenizer = tokenizer
        self.window = int(window or tokenizer.model_max_length)
        self.overhead = self.n_tokens(template.format(text=""))  # the template's own tokens, start/end included
        if self.overhead + 1 > self.window:
            raise TemplateError(f"the template alone fills the {self.window}-token window: {template!r}")

    def n_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the encoder's tokenizer, start and end included."""
        return len(self.tokenizer(text).input_ids)

    def _counts(self, pieces: Sequence[str]) -> list[int]:
        if not pieces:
            return []
        ids = self.tokenizer(list(pieces), add_special_tokens=False).input_ids
        return [len(x) for x in ids]

    def fit(self, text: str) -> tuple[str, bool]:
        """The prompt for one text (see the module docstring for the rule).

        Returns:
            ``(prompt, truncated)``: the template filled with the cleaned text, cut at sentence
            (else word) ends to fit ``window`` tokens; True when anything was cut.
        """
        text = clean_text(text)
        prompt = self.template.format(text=text)
        if self.n_tokens(prompt) <= self.window:
            return prompt, False
        budget = self.window - self.overhead
        sentences = _SENTENCE_END.split(text)
        kept: list[str] = []
        used = 0
        # CLIP's BPE tokenises whitespace-separated words independently, so counts add up; the
        # final check below keeps the rule exact for tokenizers where they do not.
        for sentence, n in zip(sentences, self._counts(sentences)):
            if used + n > budget:
                break
            kept.append(sentence)
            used += n
        if not kept:
            words = sentences[0].split(" ")
            for word, n in zip(words, self._counts(words)):
                if used + n > budget:
                    break
                kept.append(word)
                used += n
        reduced = " ".join(kept)
        prompt = self.template.format(text=reduced)
        while self.n_tokens(prompt) > self.window and " " in reduced:
            reduced = reduced.rsplit(" ", 1)[0]
            prompt = self.template.format(text=reduced)
        return prompt, True

