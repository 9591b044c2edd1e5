"""Text handling every stage shares: language detection, CJK tokens, normalisation, matching.

One copy of each rule, so data checks, training targets, metrics and retrieval agree on what
is Chinese, what is a duplicate and whether an answer occurs in a passage.

- `language(text)`: "zh" when CJK characters make up a fifth or more of the non-space
  characters, else "en".
- `normalize(text)`: Unicode NFKC, case folding, punctuation and symbols to spaces, collapsed
  whitespace (for duplicate keys and answer-in-context tests).
- `answer_in_context(answer, contexts)`: English answers must match on word boundaries ("one" is
  not in "someone"); Chinese has no spaces, so where either side is Chinese it is a substring
  test with spaces removed ("1998" is found in "1998年").
- `grounding_tokens(text, lang)`: English split as `normalize` splits it (punctuation between
  words separates them), the articles dropped; Chinese as `metric_tokens`. The metrics'
  answer-in-context and support count a copy found under these or under `metric_tokens`.
- `metric_tokens(text, lang)`: the tokens EM/F1/ROUGE-L compare. English follows the SQuAD
  script (lowercase, drop ASCII punctuation and the articles a/an/the, split on whitespace);
  Chinese follows CMRC 2018 (every CJK character is a token, a run of other letters/digits is
  one token, punctuation of either script is dropped).

    language("北京大学在哪里？")                      # "zh"
    answer_in_context("the Normans", ["The Normans (Norman: ...) were ..."])  # True
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

# The CJK Unified Ideographs, Extension A and the compatibility block.
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{CJK_RANGES}]")
# One CJK character, or a run of word characters that are neither CJK nor "_".
_ZH_TOKEN = re.compile(rf"[{CJK_RANGES}]|[^\W_{CJK_RANGES}]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = str.maketrans("", "", string.punctuation)
_PUNCT = re.compile(r"[^\w\s]|_")


def language(text: str) -> str:
    """ "zh" when CJK characters make up a fifth or more of the non-space characters, else "en"."""
    chars = sum(not c.isspace() for c in text)
    if not chars:
        return "en"
    return "zh" if len(_CJK.findall(text)) * 5 >= chars else "en"


@lru_cache(maxsize=65536)  # contexts repeat across their questions (about 5 per SQuAD paragraph)
def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


@lru_cache(maxsize=65536)
def _spaced(text: str) -> bool:
    """Whether words in `text` are separated by spaces (not Chinese)."""
    return language(text) != "zh"


# A marker after a space, or opening the text: "Paris [2]" is cited, "arr[0]" is code.
_CITATION = re.compile(r"(?:^|\s+)\[\d{1,3}\](?=\W|$)")


def strip_citations(text: str) -> str:
    """The text without passage markers ("Paris [2]" -> "Paris"): what is scored, whether
    or not the model was trained to cite."""
    return _CITATION.sub("", text).strip()


def answer_in_context(answer: str, contexts: list[str]) -> bool:
    a = normalize(strip_citations(answer))  # a RAFT target "Paris [2]" is found as "Paris"
    if not a:
        return False
    for c in contexts:
        if _spaced(answer) and _spaced(c):
            if f" {a} " in f" {normalize(c)} ":
                return True
        elif a.replace(" ", "") in normalize(c).replace(" ", ""):
            return True
    return False


def metric_tokens(text: str, lang: str) -> list[str]:
    """Normalised tokens of `text`: SQuAD for "en", CMRC 2018 style for "zh"."""
    if lang == "zh":
        return _ZH_TOKEN.findall(text.lower())
    text = text.lower().translate(_ASCII_PUNCT)
    return _ARTICLES.sub(" ", text).split()


def grounding_tokens(text: str, lang: str) -> list[str]:
    """For English `normalize`'s words without the articles, so punctuation separates words
    as it does in `answer_in_context` ("Wang Zhen" is in "Wang Zhen's", "World War II" in
    "post-World War II"; SQuAD's deletion of punctuation, right for EM, makes those
    "wangzhens" and "postworld"); for Chinese `metric_tokens`. The metrics' answer-in-context
    and support try these beside `metric_tokens` (`eval.metrics.grounding`)."""
    if lang == "zh":
        return metric_tokens(text, lang)
    return _ARTICLES.sub(" ", normalize(text)).split()


_WORD = re.compile(r"\w+")
_EN_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "with",
        "did",
        "does",
        "do",
    ]
)


def lexical_tokens(text: str) -> list[str]:
    """Tokens for BM25: lowercase words without English stop words; Chinese text is cut
    into words by jieba (per text, by its language), its punctuation dropped."""
    if language(text) == "zh":
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines on every load
        return [w.lower() for w in jieba.lcut(text) if _WORD.search(w)]
    return [w for w in _WORD.findall(text.lower()) if w not in _EN_STOP]
