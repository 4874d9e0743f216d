"""Theme labels: short phrases taken from the passages, chosen by class-based TF-IDF. Pure.

A label word is a real word seen whole: letters only (an inner hyphen or apostrophe allowed), at
least three long, not a stop word, not the tail of a word broken at a line end ("diff- erent") or
by a glyph the PDF lost ("di erent", "Ap ril"), and seen in several documents. Phrases are runs of
up to four such words with only spaces between; a theme is named by its most distinctive phrase, a
longer phrase standing in for its words when it carries enough of their use.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from functools import cached_property, lru_cache
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol

from .query import STOPWORDS

MAX_WORDS = 4  # "National Lottery Community Fund"; longer runs read as sentences
MIN_DOCUMENTS = 2  # a word seen whole in one document only may be one extraction's accident
PHRASE_SHARE = 0.3  # a phrase stands in for its word when it holds this share of the word's passages
LONGER_SHARE = 0.75  # and a longer phrase for a shorter one when it holds this share of its passages
TERMS = 6
LABEL_FROM = 3  # a label is the first phrase among this many leading terms, else its two leading words

LABEL_STOPWORDS = STOPWORDS | frozenset("""
also said says will would could shall one two three four five first second third may might must many
made make makes making like well new used use uses using within across around per via yet still
often including however therefore thus although though whether either neither every another others
etc eg ie way ways part parts number lot lots kind kinds thing things something anything nothing
year years month months week weeks day days time times able want wanted need needs needed take
taken takes took give gives given gave come comes came going goes went see seen look looked
let lets put puts set sets get gets getting become became becomes keep kept help helps helped
say saying told tell asked ask found find finds show shows shown wide key main much less least
really quite rather already always never ever sometimes usually just even back since upon among
six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand million twice note page
""".split())
# real one- and two-letter words; another short piece before a word marks it as a broken word's tail
SHORT_WORDS = frozenset("""a i o ad ah am an as at be by do go he hi if in is it me my no of oh ok
on or so to up us we eg ie vs mr ms dr st""".split())

HEADING_SEPARATOR = " > "  # between the levels of a passage's heading path (kb.chunk)
NOUNS_IN_LY = frozenset("family supply assembly reply ally rally anomaly monopoly".split())
# words that qualify what follows ("older people") but cannot end a name ("care services closer")
NO_END = frozenset("""closer better greater wider larger smaller longer shorter higher lower stronger
weaker easier harder earlier later newer older bigger fewer more less further""".split())

_LEAD = "\"'([{<«*_#>"  # may open a whole word
_TRAIL = "\"')]}>»*_.,;:!?…"  # may close one
# a whole word: letters (an inner hyphen or apostrophe allowed), opened by a space or _LEAD and
# closed by a space or _TRAIL, so neither "diff" of "diff-" nor any part of "di\ufffderent" is one
_WORD = re.compile(r"(?<![^\s%s])[^\W\d_]+(?:['-][^\W\d_]+)*(?![^\s%s])"
                   % (re.escape(_LEAD), re.escape(_TRAIL)))
_SENTENCE_END = frozenset(".!?:")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2010": "-", "\u2011": "-"})


class Passage(Protocol):
    doc_id: int
    heading: str
    text: str


@dataclass
class Profile:
    """What one group of passages says: occurrences of each phrase and how many passages hold it."""

    counts: Counter = field(default_factory=Counter)
    passages: Counter = field(default_factory=Counter)
    size: int = 0

    def __add__(self, other: "Profile") -> "Profile":
        return Profile(self.counts + other.counts, self.passages + other.passages, self.size + other.size)


@dataclass
class Vocabulary:
    """What the labelled passages share: the documents each word is seen in, the spellings of
    phrases not written as their key ((key, form, inside a sentence) -> uses) and each word's
    spellings inside sentences ((lower case, as written) -> uses)."""

    documents: defaultdict[str, set] = field(default_factory=lambda: defaultdict(set))
    spellings: Counter = field(default_factory=Counter)
    capitals: Counter = field(default_factory=Counter)

    def eligible(self) -> set[str]:
        """The words seen whole in enough documents to name a theme."""
        need = min(MIN_DOCUMENTS, len(set().union(*self.documents.values())) if self.documents else 0)
        return {w for w, docs in self.documents.items() if len(docs) >= need}

    @cached_property
    def _forms(self) -> dict[str, list[tuple[str, bool, int]]]:
        out: dict[str, list] = defaultdict(list)
        for (key, form, cased), n in self.spellings.items():
            out[key].append((form, cased, n))
        return out

    @cached_property
    def _usual(self) -> dict[str, str]:
        best: dict[str, tuple[int, str]] = {}
        for (lower, word), n in self.capitals.items():
            best[lower] = max(best.get(lower, (0, lower)), (n, word))
        return {lower: word for lower, (_, word) in best.items()}

    def display(self, key: str, uses: int, capital: bool = True) -> str:
        """The phrase as the passages most often spell it inside a sentence (else each word as it
        is most often spelt there), of its `uses` in all; its first letter a capital unless
        `capital` is False."""
        forms, cased = Counter(), set()
        for form, inside, n in self._forms.get(key, ()):
            forms[form] += n
            if inside:
                cased.add(form)
        plain = uses - sum(forms.values())  # the uses spelt as the key itself: lower case, singular
        if plain > 0:
            forms[key] += plain
            cased.add(key)
        text = max(forms or [key], key=lambda f: (f in cased, forms[f], f))
        if text not in cased:
            text = " ".join(self._usual.get(w, w) for w in text.lower().split())
        return text[:1].upper() + text[1:] if capital else text


@dataclass(frozen=True)
class Description:
    label: str
    terms: list[str]


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A word's key: lower case, a plural folded into its singular ("phases", "phase")."""
    word = word.lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "'s")):
        return word[:-1]
    return word


def runs(text: str) -> list[list[tuple[str, bool]]]:
    """The text's runs of whole content words, each word with whether it sits inside a sentence
    (its capitals then say something). Anything but a space between two words (punctuation,
    numbers, symbols, a broken word), a paragraph break or a stop word ends a run."""
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKC", text).translate(_QUOTES)
                       if unicodedata.category(ch) != "Cf")  # soft hyphens and zero-width marks join their word
    out: list[list[tuple[str, bool]]] = []
    run: list[tuple[str, bool]] = []
    inside = False  # this word follows another in the same sentence
    previous, end = "", 0  # the word before, when only spaces came between
    for match in _WORD.finditer(text):
        word, gap = match.group(), text[end:match.start()]
        end, broken = match.end(), False
        if gap != " ":
            between, tail = gap.strip(), gap.rstrip()
            if between or "\n\n" in gap:
                run = _close(run, out)
            if "\n" in gap or _SENTENCE_END.intersection(between):
                inside = False  # a new sentence, or a new line, may start with a capital of its own
            broken = tail.endswith("-") and len(tail) >= 2 and tail[-2].isalpha()  # "diff-\nerent"
            previous = "" if between else previous
        if broken or previous and len(previous) <= 2 and previous.lower() not in SHORT_WORDS and not previous.isupper():
            run = _close(run, out)  # the tail of a broken word ("erent"), or of one a lost glyph split ("Ap ril")
        elif len(word) >= 3 and word.lower() not in LABEL_STOPWORDS:
            run.append((word, inside))
        else:
            run = _close(run, out)
        previous, inside = word, True
    _close(run, out)
    return out


def _close(run, out) -> list:
    if run:
        out.append(run)
    return []


def read(groups: Mapping[int, Iterable[Passage]]) -> tuple[dict[int, Profile], Vocabulary]:
    """Each group's profile and the vocabulary they share, in one pass over the passages. A
    heading shared by a section's passages (each level of its path) counts once per group, not
    once per passage."""
    vocabulary, profiles = Vocabulary(), {}
    for group, passages in groups.items():
        profile = profiles[group] = Profile()
        headings = set()
        for passage in passages:
            profile.size += 1
            parts = [(passage.text or "", False)]
            for heading in (passage.heading or "").split(HEADING_SEPARATOR):
                if (passage.doc_id, heading) not in headings:
                    headings.add((passage.doc_id, heading))
                    parts.append((heading, True))
            grams, spelt, capitals = [], [], []
            for part, in_heading in parts:
                for run in runs(part):
                    _count(run, in_heading, passage.doc_id, vocabulary, grams, spelt, capitals)
            profile.counts.update(grams)
            profile.passages.update(set(grams))
            vocabulary.spellings.update(spelt)
            vocabulary.capitals.update(capitals)
    return profiles, vocabulary


def _count(run, in_heading: bool, doc_id, vocabulary: Vocabulary, grams: list, spelt: list, capitals: list) -> None:
    """The run's phrases of one to MAX_WORDS words into `grams` (by key), the spellings of those
    not written as their key into `spelt`, its words' spellings inside sentences into `capitals`."""
    words = [w for w, _ in run]
    keys = [stem(w) for w in words]
    for key in keys:
        vocabulary.documents[key].add(doc_id)
    if not in_heading:
        capitals += [(w.lower(), w) for w, inside in run if inside and not w.isupper()]
    longest = min(MAX_WORDS, len(run))
    grams += keys
    for n in range(2, longest + 1):
        grams += map(" ".join, zip(*(keys[i:] for i in range(n))))
    odd = [w != k for w, k in zip(words, keys)]  # spelt otherwise than its key: a capital, a plural
    if not any(odd):
        return
    for n in range(1, longest + 1):
        for i in range(len(run) - n + 1):
            if any(odd[i:i + n]):
                form = " ".join(words[i:i + n])
                cased = run[i][1] and not in_heading and not any(w.isupper() and len(w) > 1 for w in words[i:i + n])
                spelt.append((" ".join(keys[i:i + n]), form if cased else form.lower(), cased))


def describe(profiles: Mapping[int, Profile], vocabulary: Vocabulary, top: int = TERMS) -> dict[int, Description]:
    """Each group's distinctive phrases (class-based TF-IDF: frequent in the group, rare across
    the groups) and a label that no other group shares."""
    allowed = vocabulary.eligible()
    totals: Counter = Counter()
    for profile in profiles.values():
        totals.update(profile.counts)
    words = {g: sum(n for k, n in p.counts.items() if " " not in k) for g, p in profiles.items()}
    average = sum(words.values()) / max(1, len(profiles))
    chosen: dict[int, list[str]] = {}
    for group, profile in profiles.items():
        support = 2 if profile.size > 1 else 1

        def score(key, profile=profile, group=group):  # c-TF-IDF, times the share of the phrase's use that is here
            n = profile.counts[key]
            return n / max(1, words[group]) * math.log(1 + average / totals[key]) * math.sqrt(n / totals[key])

        candidates = [k for k, n in profile.passages.items()
                      if n >= support and all(w in allowed for w in k.split()) and _may_end(k)]
        ranked = sorted(candidates, key=lambda k: (-score(k), k))
        singles = [k for k in ranked if " " not in k]
        phrases = [k for k in ranked if " " in k]
        terms: list[str] = []
        for word in singles:
            need = max(support, math.ceil(PHRASE_SHARE * profile.passages[word]))
            term = next((p for p in phrases if word in p.split() and profile.passages[p] >= need), word)
            while longer := next((p for p in phrases if _within(term, p) and p != term
                                  and profile.passages[p] >= LONGER_SHARE * profile.passages[term]), None):
                term = longer  # "communities together" grows into "healthy communities together"
            if not any(_within(term, t) or _within(t, term) for t in terms):
                terms.append(term)
            if len(terms) == top:
                break
        chosen[group] = terms
    shown = _labels(chosen, profiles, vocabulary, totals)
    return {g: Description(shown[g], [vocabulary.display(t, totals[t]) for t in chosen[g]]) for g in chosen}


def _may_end(key: str) -> bool:
    """A phrase ends in a noun, as far as spelling tells: not in a past tense ("areas received"),
    an adverb ("work closely") or a comparative ("care services closer")."""
    last = key.rsplit(" ", 1)[-1]
    return last not in NO_END and not (len(last) >= 5 and (last.endswith("ed") and not last.endswith("eed")
                                                           or last.endswith("ly") and last not in NOUNS_IN_LY))


def _within(short: str, long: str) -> bool:
    return f" {short} " in f" {long} "


def _labels(chosen: dict[int, list[str]], profiles, vocabulary: Vocabulary, totals: Counter) -> dict[int, str]:
    """Each group's best phrase that no larger group's label took (else its two leading terms),
    so two groups never share a label."""
    used: set[str] = set()  # terms in the labels given so far
    shown: set[str] = set()
    out = {}
    for group in sorted(chosen, key=lambda g: (-profiles[g].size, g)):
        terms = chosen[group]
        free = [t for t in terms if t not in used]
        options = [[t] for t in free[:LABEL_FROM] if " " in t] + [free[:2], terms[:2]]
        texts = [(o, " and ".join(vocabulary.display(t, totals[t], capital=n == 0) for n, t in enumerate(o)))
                 for o in options if o]
        option, text = next(((o, t) for o, t in texts if t not in shown), ([], texts[0][1] if texts else ""))
        number = 1
        while text in shown:  # every option is another group's label: rare, as groups that read alike were merged
            number += 1
            text = f"{texts[0][1]} ({number})"
        used.update(option)
        shown.add(text)
        out[group] = text
    return out


def label(groups: Mapping[int, Iterable[Passage]], top: int = TERMS) -> dict[int, Description]:
    """Read the groups and describe them."""
    return describe(*read(groups), top=top)
