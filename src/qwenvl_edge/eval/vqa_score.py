"""VQA accuracy as the official VQA evaluation computes it (the ``VQAEval`` that Qwen-VL's eval_mm runs for
VQAv2, OK-VQA, TextVQA and VizWiz; docs/model.md 7.5), quirks included.

Control flow of the official loop, per question:
- the model's answer: ``\\n`` and ``\\t`` become spaces, strip, then ALWAYS punctuation, then
  digits/articles/contractions (which also lower-cases);
- the annotators' answers: punctuation only, and only when they are not all the same string; when they
  all agree they are compared as they are (not even lower-cased);
- accuracy against annotator i = min(1, matches among the other annotators / 3), averaged over all of
  them (the official "others" are the other answer records, distinct by answer_id: leave-one-out by
  position here). So a full score needs four agreeing annotations, and one annotation alone always
  scores 0.
"""

from __future__ import annotations

import re
from typing import Sequence

# Removed outright when the answer has one of them next to a space (or a "1,000"-style comma anywhere),
# else replaced by a space. "'" and "." are not in the list; ":" neither.
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
               "?", "!"]
COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# Quirk: "(?!<=\d)" was meant as a look-behind but is a look-ahead for the text "<=" + digit, which never
# matches in front of a ".": the pattern removes every period NOT followed by a digit ("5." -> "5",
# "1.5" unchanged).
PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
# Quirk: the official passes re.UNICODE as sub()'s third positional argument, which is ``count``:
# re.UNICODE == 32, so at most the first 32 such periods go.
PERIOD_COUNT = int(re.UNICODE)

NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
           "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}


def _contractions() -> dict[str, str]:
    """Apostrophe-less spellings -> the contraction. The official table also has capitalised keys ("Im",
    "Ive", "Id've", "I'dve"); they can never match a lower-cased word, so they are left out here. Its one
    backwards entry ("somebody'd" -> "somebodyd") is kept."""
    pairs = """
    aint ain't; arent aren't; cant can't; couldve could've; couldnt couldn't; couldn'tve couldn't've;
    couldnt've couldn't've; didnt didn't; doesnt doesn't; dont don't; hadnt hadn't; hadnt've hadn't've;
    hadn'tve hadn't've; hasnt hasn't; havent haven't; hed he'd; hed've he'd've; he'dve he'd've; hes he's;
    howd how'd; howll how'll; hows how's; isnt isn't; itd it'd; itd've it'd've; it'dve it'd've; itll it'll;
    let's let's; maam ma'am; mightnt mightn't; mightnt've mightn't've; mightn'tve mightn't've;
    mightve might've; mustnt mustn't; mustve must've; neednt needn't; notve not've; oclock o'clock;
    oughtnt oughtn't; ow's'at 'ow's'at; 'ows'at 'ow's'at; 'ow'sat 'ow's'at; shant shan't;
    shed've she'd've; she'dve she'd've; she's she's; shouldve should've; shouldnt shouldn't;
    shouldnt've shouldn't've; shouldn'tve shouldn't've; somebody'd somebodyd; somebodyd've somebody'd've;
    somebody'dve somebody'd've; somebodyll somebody'll; somebodys somebody's; someoned someone'd;
    someoned've someone'd've; someone'dve someone'd've; someonell someone'll; someones someone's;
    somethingd something'd; somethingd've something'd've; something'dve something'd've;
    somethingll something'll; thats that's; thered there'd; thered've there'd've; there'dve there'd've;
    therere there're; theres there's; theyd they'd; theyd've they'd've; they'dve they'd've;
    theyll they'll; theyre they're; theyve they've; twas 'twas; wasnt wasn't; wed've we'd've;
    we'dve we'd've; weve we've; werent weren't; whatll what'll; whatre what're; whats what's;
    whatve what've; whens when's; whered where'd; wheres where's; whereve where've; whod who'd;
    whod've who'd've; who'dve who'd've; wholl who'll; whos who's; whove who've; whyll why'll;
    whyre why're; whys why's; wont won't; wouldve would've; wouldnt wouldn't; wouldnt've wouldn't've;
    wouldn'tve wouldn't've; yall y'all; yall'll y'all'll; y'allll y'all'll; yall'd've y'all'd've;
    y'alld've y'all'd've; y'all'dve y'all'd've; youd you'd; youd've you'd've; you'dve you'd've;
    youll you'll; youre you're; youve you've"""
    return dict(pair.split() for pair in pairs.split(";"))


CONTRACTIONS = _contractions()


def punctuation(text: str) -> str:
    """The official processPunctuation. Every test looks at the text as given, not at the text as
    edited so far."""
    out = text
    strip_all = COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in PUNCTUATION:
        if strip_all or p + " " in text or " " + p in text:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD.sub("", out, count=PERIOD_COUNT)


def digits_articles(text: str) -> str:
    """The official processDigitArticle: lower-case, number words -> digits, drop articles, restore
    contractions, single spaces."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(answer: str) -> str:
    """What the model's answer is compared as."""
    return digits_articles(punctuation(answer.replace("\n", " ").replace("\t", " ").strip()))


def score(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of one answer against the annotators' answers (usually ten)."""
    if not answers:
        raise ValueError("VQA accuracy needs at least one annotated answer")
    predicted = normalize_answer(prediction)
    truth = [punctuation(a) for a in answers] if len(set(answers)) > 1 else list(answers)
    accs = []
    for i in range(len(truth)):
        matches = sum(1 for j, a in enumerate(truth) if j != i and a == predicted)
        accs.append(min(1.0, matches / 3))
    return sum(accs) / len(accs)
