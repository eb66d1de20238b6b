"""Synthetic queries for unlabelled chunks: one generator per kind, behind :class:`QueryGenerator`.

Two generators:

* :class:`HeuristicGenerator` (the default; needs no generative model). Per chunk, in this order and then
  repeating: a **heading question** made from the chunk's heading path (``what is early stopping in
  regularization?``), a **key-phrase query** made of the chunk's top TF-IDF phrases over the corpus
  (``patience validation loss checkpoint``), and an **inverse-cloze** query: one sentence of the chunk, which is
  removed from the positive passage 90% of the time (Lee et al., 2019) so that the model learns context rather
  than string overlap. With the default 3 queries a chunk that is one of each kind; with 5 it is heading,
  key phrase, cloze, cloze, key phrase. A chunk without sentences long enough for a cloze gets a key-phrase
  query instead, and so does the second and later chunk of a section for its heading question (one heading
  question per section).
* :class:`Doc2QueryGenerator`: a seq2seq query generator through transformers (e.g. a local copy of
  ``BeIR/query-gen-msmarco-t5-base-v1``), top-p sampling, batched.

Every query carries its source chunk, its document and the positive passage to train on.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from indexing.chunks import Chunk, embedding_text
from mlsearch.errors import ModelLoadError

logger = logging.getLogger(__name__)

GENERATORS: tuple[str, ...] = ("heuristic", "doc2query")
HEURISTIC_KINDS: tuple[str, ...] = ("heading", "keyphrase", "cloze")
_EXTRA_KINDS: tuple[str, ...] = ("cloze", "keyphrase")
_FENCE = re.compile(r"```.*?```|\$\$.*?\$\$", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`*])")
_MARKUP = re.compile(r"[*_`#>|]+|\[([^\]]*)\]\([^)]*\)")
_WH_WORDS = frozenset("what why how when which where who whom whose is are can does do should".split())


@dataclass(frozen=True)
class SyntheticQuery:
    """A query and the chunk it was made from.

    Attributes:
        text: The query.
        kind: How it was made (``heading``, ``keyphrase``, ``cloze``, ``doc2query``, ``logged``).
        position: The source chunk's position in the index.
        chunk_id: The source chunk's id (its relevance label).
        doc_id: The source chunk's document.
        positive: The passage to train on, as the model embeds it (context line, blank line, passage).
    """

    text: str
    kind: str
    position: int
    chunk_id: str
    doc_id: str
    positive: str


class QueryGenerator(Protocol):
    """Makes synthetic queries for chunks."""

    name: str

    def generate(self, chunks: Sequence[tuple[int, Chunk]], per_chunk: int) -> list[SyntheticQuery]:
        """Up to ``per_chunk`` queries for each ``(position, chunk)``."""
        ...


def synthetic_query(
    text: str, kind: str, position: int, chunk: Chunk, passage: str | None = None
) -> SyntheticQuery:
    """A query for a chunk; its positive is the chunk as embedded, with ``passage`` in place of its text if given."""
    return SyntheticQuery(
        text=" ".join(text.split()), kind=kind, position=position, chunk_id=chunk.id, doc_id=chunk.doc_id,
        positive=embedding_text(chunk.title, chunk.heading, chunk.text if passage is None else passage),
    )


def plain_text(text: str) -> str:
    """Passage text without code blocks, display math and Markdown markup (link texts kept)."""
    text = _FENCE.sub(" ", text)
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    return text


def sentences(text: str, min_words: int = 6, max_words: int = 45) -> list[str]:
    """The prose sentences of a passage that are long enough to stand as a query.

    Table rows, list markers and code are left out; a sentence must have ``min_words`` to ``max_words`` words.
    """
    out = []
    for line in _FENCE.sub(" ", text).splitlines():
        if line.lstrip().startswith("|"):
            continue
        line = re.sub(r"^\s*(?:[-+*]|\d+[.)])\s+", "", line)
        line = re.sub(r"\s+([,;:.!?])", r"\1", " ".join(plain_text(line).split()))
        for sentence in _SENTENCE_END.split(line):
            words = sentence.split()
            if min_words <= len(words) <= max_words:
                out.append(" ".join(words))
    return out


def heading_question(chunk: Chunk, rng: random.Random) -> str | None:
    """A question made from the chunk's heading path and title, or None when it has neither.

    Example:
        ``Dropout`` / ``Training versus inference`` → ``what is training versus inference in dropout?``
    """
    title = re.sub(r"\s*\([^)]*\)", "", plain_text(chunk.title)).strip()
    parts = [p.strip() for p in chunk.heading.split(" > ") if p.strip()]
    topic = plain_text(parts[-1]).strip() if parts else title
    if not topic:
        return None
    topic_words = set(re.findall(r"\w+", topic.lower()))
    context = title if parts else ""
    if context and not set(re.findall(r"\w+", context.lower())) <= topic_words:
        topic = f"{topic} in {context}"
    topic = topic.rstrip("?:.").lower()
    if topic.split()[0] in _WH_WORDS:
        return f"{topic}?"
    template = rng.choice(("what is {}?", "how does {} work?", "explain {}", "{} explained"))
    return template.format(topic)


class KeyPhrases:
    """The top TF-IDF words and two-word phrases of each chunk, fitted over all the chunks given.

    Args:
        texts: Every chunk's passage text (the corpus the weights are computed over).
        top: How many phrases are kept per chunk.
    """

    def __init__(self, texts: Sequence[str], top: int = 8) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.top = top
        self._vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), stop_words="english", sublinear_tf=True, token_pattern=r"(?u)\b[a-zA-Z][\w-]+\b",
            max_df=0.5 if len(texts) >= 10 else 1.0,
        )
        cleaned = [plain_text(t) for t in texts]
        try:
            self._matrix = self._vectorizer.fit_transform(cleaned)
            self._terms = self._vectorizer.get_feature_names_out()
        except ValueError:  # no usable term in the whole corpus
            self._matrix, self._terms = None, []

    def phrases(self, index: int) -> list[str]:
        """The best phrases of text ``index``, best first; a word inside a kept phrase is left out."""
        if self._matrix is None:
            return []
        row = self._matrix.getrow(index)
        ranked = [str(self._terms[i]) for i in row.indices[row.data.argsort()[::-1]]]
        kept: list[str] = []
        words: set[str] = set()
        for term in ranked:
            if words.intersection(term.split()):
                continue
            kept.append(term)
            words.update(term.split())
            if len(kept) == self.top:
                break
        return kept


class HeuristicGenerator:
    """Heading questions, key-phrase queries and inverse-cloze sentences (see the module docstring).

    Args:
        seed: Seeds every random choice (templates, phrases, sentences, removal).
        remove_sentence: Probability that a cloze sentence is removed from its positive passage.
    """

    name = "heuristic"

    def __init__(self, seed: int = 0, remove_sentence: float = 0.9) -> None:
        if not 0.0 <= remove_sentence <= 1.0:
            raise ValueError(f"remove_sentence must be between 0 and 1, got {remove_sentence}")
        self.seed = seed
        self.remove_sentence = remove_sentence

    @staticmethod
    def plan(per_chunk: int) -> list[str]:
        """The kinds made for one chunk, in order (heading, key phrase, cloze, then cloze/key phrase)."""
        kinds = list(HEURISTIC_KINDS[:per_chunk])
        kinds += [_EXTRA_KINDS[i % 2] for i in range(max(0, per_chunk - len(HEURISTIC_KINDS)))]
        return kinds

    def generate(self, chunks: Sequence[tuple[int, Chunk]], per_chunk: int) -> list[SyntheticQuery]:
        """Up to ``per_chunk`` queries per chunk (fewer when a kind has nothing to work with)."""
        if per_chunk < 1:
            raise ValueError(f"queries per chunk must be at least 1, got {per_chunk}")
        rng = random.Random(self.seed)
        keyphrases = KeyPhrases([chunk.text for _, chunk in chunks])
        out: list[SyntheticQuery] = []
        asked: set[tuple[str, str]] = set()
        for index, (position, chunk) in enumerate(chunks):
            phrases = keyphrases.phrases(index)
            unused = sentences(chunk.text)
            rng.shuffle(unused)
            for kind in self.plan(per_chunk):
                if kind == "heading" and (chunk.doc_id, chunk.heading) in asked:
                    kind = "cloze"  # the section's first chunk already has its heading question
                if kind == "cloze" and not unused:
                    kind = "keyphrase"
                if kind == "heading":
                    asked.add((chunk.doc_id, chunk.heading))
                    text = heading_question(chunk, rng)
                    if text:
                        out.append(synthetic_query(text, "heading", position, chunk))
                elif kind == "keyphrase":
                    if len(phrases) >= 2:
                        picked = rng.sample(phrases[: max(4, min(len(phrases), 6))], k=min(3, len(phrases)))
                        out.append(synthetic_query(" ".join(picked), "keyphrase", position, chunk))
                else:
                    sentence = unused.pop()
                    passage = chunk.text
                    if rng.random() < self.remove_sentence:
                        passage = _without(chunk.text, sentence)
                    out.append(synthetic_query(sentence, "cloze", position, chunk, passage))
        logger.info("heuristic generator: %d queries for %d chunks", len(out), len(chunks))
        return out


def _without(text: str, sentence: str) -> str:
    """The passage with the sentence taken out (matched on words, so markup around it does not matter)."""
    words = sentence.split()
    pattern = r"[\s*_`]*".join(re.escape(w) for w in words)
    removed, count = re.subn(pattern, " ", text, count=1)
    return " ".join(removed.split()) if count and removed.strip() else text


class Doc2QueryGenerator:
    """Queries sampled from a seq2seq model (doc2query / docTTTTTquery) with top-p sampling, in batches.

    Args:
        model_path: A local folder holding the model and its tokenizer (nothing is downloaded).
        seed: Seeds torch's sampler.
        top_p: Nucleus sampling threshold.
        batch_size: Chunks per generation batch.
        max_input_tokens: Passage tokens read by the model.
        max_new_tokens: Longest query generated.
        device: Torch device.

    Raises:
        ModelLoadError: The folder is missing or does not hold a seq2seq model.
    """

    name = "doc2query"

    def __init__(
        self, model_path: str | Path, seed: int = 0, top_p: float = 0.95, batch_size: int = 8,
        max_input_tokens: int = 384, max_new_tokens: int = 48, device: str = "cpu",
    ) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"doc2query model folder not found: {path} (nothing is downloaded)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(str(path), local_files_only=True).to(device)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError… for a bad folder
            raise ModelLoadError(
                f"cannot load a seq2seq model from {path} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from exc
        self.model.eval()
        self.model_path = str(path)
        self.seed, self.top_p, self.batch_size = seed, top_p, batch_size
        self.max_input_tokens, self.max_new_tokens, self.device = max_input_tokens, max_new_tokens, device

    def generate(self, chunks: Sequence[tuple[int, Chunk]], per_chunk: int) -> list[SyntheticQuery]:
        """``per_chunk`` sampled queries per chunk (empty generations are dropped)."""
        import torch
        from tqdm.auto import tqdm

        if per_chunk < 1:
            raise ValueError(f"queries per chunk must be at least 1, got {per_chunk}")
        torch.manual_seed(self.seed)
        out: list[SyntheticQuery] = []
        batches = range(0, len(chunks), self.batch_size)
        for start in tqdm(batches, desc="doc2query", unit="batch", disable=len(batches) < 4):
            batch = chunks[start : start + self.batch_size]
            inputs = self.tokenizer(
                [plain_text(chunk.text) for _, chunk in batch], return_tensors="pt", padding=True,
                truncation=True, max_length=self.max_input_tokens,
            ).to(self.device)
            with torch.no_grad():
                generated = self.model.generate(
                    **inputs, do_sample=True, top_p=self.top_p, top_k=0, max_new_tokens=self.max_new_tokens,
                    num_return_sequences=per_chunk,
                )
            texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in enumerate(texts):
                position, chunk = batch[i // per_chunk]
                if text.strip():
                    out.append(synthetic_query(text, "doc2query", position, chunk))
        logger.info("doc2query generator: %d queries for %d chunks", len(out), len(chunks))
        return out


def make_generator(
    name: str, seed: int = 0, model_path: str | Path | None = None, device: str = "cpu"
) -> QueryGenerator:
    """The generator called ``name``.

    Raises:
        ValueError: Unknown name, or ``doc2query`` without a model path.
        ModelLoadError: The doc2query model cannot be loaded.
    """
    if name == "heuristic":
        return HeuristicGenerator(seed=seed)
    if name == "doc2query":
        if model_path is None:
            raise ValueError("the doc2query generator needs --generator-model PATH (a local seq2seq model)")
        return Doc2QueryGenerator(model_path, seed=seed, device=device)
    raise ValueError(f"unknown generator {name!r}; valid: {', '.join(GENERATORS)}")
