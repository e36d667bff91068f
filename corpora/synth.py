"""A synthetic English-like corpus drawn from a known source, so its best perplexity is known.

The source is a mixture of hidden Markov models. Each sentence first draws a component
c = (topic, tense) that it keeps to its end, then walks a small grammar of hidden states q
(subject determiner, adjective, noun, verb, object, prepositional phrase, conjunction, ...;
the grammatical number of the subject is part of the state so that the verb agrees with it).
A state emits one word with probabilities that depend on both c and q, and after each word the
sentence either moves to another state or ends. The topic decides most nouns, verbs and
adjectives; the tense decides every verb form; the number decides the verb after a subject that
may carry a prepositional phrase. A model must remember these across several words (a
bigram model sees only the previous one), which is what the corpus is for.

Shapes: C components, Q grammar states per component, n_vocab words.
    start (C, Q)          P(c, q_1); sums to 1 over both axes
    trans (C, Q, Q)       P(q_{t+1} | c, q_t)
    end   (C, Q)          P(sentence ends after w_t | c, q_t); trans[c, q].sum() + end[c, q] = 1
    emit  (C, Q, n_vocab) P(w_t | c, q_t)

Because the source is known, the probability of a sentence w_1..w_n together with its end is
exact (the forward algorithm, summing over components and state paths):

    P(w, </s>) = sum_c sum_q start[c, q_1] emit[c, q_1, w_1]
                 prod_{t>1} trans[c, q_{t-1}, q_t] emit[c, q_t, w_t]  end[c, q_n]

and the oracle perplexity of a corpus uses the same convention as ``lm perplexity``:
ppl = exp(-sum ln P(w, </s>) / (words + sentences)); ``</s>`` is predicted, ``<s>`` is not.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpora.text import check_outdir, write_atomic
from lm import files, memory
from lm.errors import DataError
from lm.metrics import LN10, perplexity

Array = np.ndarray

DEFAULT_TOKENS = 1_000_000  # words in all three splits: 900k train, 50k valid, 50k test
MIN_TOKENS = 100
SPLIT_FRACTIONS = {"train": 0.9, "valid": 0.05, "test": 0.05}
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------------------
# The words. Nouns are "singular/plural", verbs "base/third-person-singular/past"; lists are in
# order of decreasing frequency (weights fall off as 1 / rank**zipf).

TOPICS = {
    "farm": {
        "nouns": "dog/dogs cat/cats horse/horses cow/cows farmer/farmers pig/pigs goat/goats "
        "hen/hens barn/barns field/fields lamb/lambs duck/ducks fence/fences rabbit/rabbits "
        "tractor/tractors fox/foxes mouse/mice goose/geese pony/ponies",
        "intransitive": "sleep/sleeps/slept bark/barks/barked run/runs/ran graze/grazes/grazed "
        "wander/wanders/wandered hide/hides/hid rest/rests/rested jump/jumps/jumped",
        "transitive": "chase/chases/chased feed/feeds/fed follow/follows/followed "
        "watch/watches/watched pull/pulls/pulled guard/guards/guarded kick/kicks/kicked "
        "bite/bites/bit",
        "adjectives": "hungry lazy muddy brown noisy tired fat woolly gentle spotted",
    },
    "sea": {
        "nouns": "ship/ships sailor/sailors boat/boats wave/waves captain/captains whale/whales "
        "island/islands harbour/harbours sail/sails gull/gulls anchor/anchors crab/crabs "
        "net/nets shell/shells deck/decks mast/masts fisherman/fishermen shore/shores "
        "lighthouse/lighthouses",
        "intransitive": "sink/sinks/sank float/floats/floated drift/drifts/drifted "
        "swim/swims/swam sail/sails/sailed dive/dives/dived splash/splashes/splashed "
        "vanish/vanishes/vanished",
        "transitive": "steer/steers/steered catch/catches/caught mend/mends/mended tow/tows/towed "
        "spot/spots/spotted load/loads/loaded rescue/rescues/rescued row/rows/rowed",
        "adjectives": "salty wet blue stormy distant rough deep calm grey wooden",
    },
    "kitchen": {
        "nouns": "cook/cooks cake/cakes pot/pots plate/plates knife/knives spoon/spoons "
        "apple/apples egg/eggs oven/ovens baker/bakers pan/pans onion/onions pie/pies "
        "cup/cups kettle/kettles waiter/waiters guest/guests bowl/bowls lemon/lemons",
        "intransitive": "boil/boils/boiled burn/burns/burned bake/bakes/baked cool/cools/cooled "
        "smell/smells/smelled rise/rises/rose sizzle/sizzles/sizzled spill/spills/spilled",
        "transitive": "cut/cuts/cut stir/stirs/stirred wash/washes/washed serve/serves/served "
        "taste/tastes/tasted fill/fills/filled peel/peels/peeled chop/chops/chopped",
        "adjectives": "hot sweet fresh sour crisp spicy greasy sticky clean warm",
    },
    "music": {
        "nouns": "singer/singers song/songs drum/drums piano/pianos guitar/guitars band/bands "
        "choir/choirs violin/violins dancer/dancers tune/tunes stage/stages drummer/drummers "
        "flute/flutes poet/poets melody/melodies concert/concerts trumpet/trumpets "
        "bell/bells note/notes",
        "intransitive": "sing/sings/sang dance/dances/danced echo/echoes/echoed ring/rings/rang "
        "hum/hums/hummed bow/bows/bowed clap/claps/clapped whistle/whistles/whistled",
        "transitive": "play/plays/played hear/hears/heard tune/tunes/tuned strum/strums/strummed "
        "record/records/recorded perform/performs/performed practise/practises/practised "
        "compose/composes/composed",
        "adjectives": "loud soft sad merry famous slow lively quiet sweet bright",
    },
    "nature": {
        "nouns": "tree/trees cloud/clouds river/rivers bird/birds flower/flowers hill/hills "
        "star/stars wind/winds leaf/leaves mountain/mountains forest/forests stone/stones "
        "valley/valleys moon/moons meadow/meadows lake/lakes bee/bees storm/storms "
        "snowflake/snowflakes",
        "intransitive": "grow/grows/grew shine/shines/shone blow/blows/blew fall/falls/fell "
        "bloom/blooms/bloomed glow/glows/glowed fade/fades/faded freeze/freezes/froze",
        "transitive": "cover/covers/covered cross/crosses/crossed climb/climbs/climbed "
        "shake/shakes/shook bend/bends/bent reach/reaches/reached light/lights/lit "
        "touch/touches/touched",
        "adjectives": "green tall cold dark wild golden misty frozen silent bare",
    },
    "city": {
        "nouns": "car/cars street/streets bus/buses driver/drivers shop/shops train/trains "
        "tower/towers station/stations window/windows taxi/taxis door/doors bank/banks "
        "office/offices lamp/lamps clerk/clerks bicycle/bicycles market/markets "
        "tourist/tourists policeman/policemen",
        "intransitive": "stop/stops/stopped arrive/arrives/arrived honk/honks/honked "
        "hurry/hurries/hurried park/parks/parked close/closes/closed crash/crashes/crashed "
        "turn/turns/turned",
        "transitive": "drive/drives/drove pass/passes/passed open/opens/opened "
        "visit/visits/visited repair/repairs/repaired paint/paints/painted "
        "block/blocks/blocked rent/rents/rented",
        "adjectives": "busy crowded narrow modern dirty empty expensive broken yellow noisy",
    },
    "school": {
        "nouns": "teacher/teachers student/students book/books lesson/lessons pencil/pencils "
        "desk/desks page/pages letter/letters question/questions map/maps answer/answers "
        "library/libraries pupil/pupils story/stories poem/poems classroom/classrooms "
        "ruler/rulers exam/exams scholar/scholars",
        "intransitive": "read/reads/read write/writes/wrote listen/listens/listened "
        "laugh/laughs/laughed think/thinks/thought study/studies/studied sit/sits/sat "
        "begin/begins/began",
        "transitive": "explain/explains/explained copy/copies/copied answer/answers/answered "
        "forget/forgets/forgot check/checks/checked remember/remembers/remembered "
        "borrow/borrows/borrowed teach/teaches/taught",
        "adjectives": "clever long difficult short simple careful curious boring correct blank",
    },
    "castle": {
        "nouns": "king/kings knight/knights queen/queens soldier/soldiers castle/castles "
        "sword/swords gate/gates wall/walls dragon/dragons prince/princes shield/shields "
        "army/armies crown/crowns guard/guards giant/giants servant/servants "
        "banner/banners wizard/wizards princess/princesses",
        "intransitive": "fight/fights/fought ride/rides/rode march/marches/marched "
        "kneel/kneels/knelt shout/shouts/shouted rule/rules/ruled flee/flees/fled "
        "win/wins/won",
        "transitive": "defend/defends/defended attack/attacks/attacked capture/captures/captured "
        "build/builds/built praise/praises/praised betray/betrays/betrayed "
        "command/commands/commanded crown/crowns/crowned",
        "adjectives": "brave royal proud ancient cruel noble mighty grim loyal fierce",
    },
}

# Words every topic uses.
GENERAL = {
    "nouns": "man/men woman/women child/children friend/friends boy/boys girl/girls "
    "stranger/strangers neighbour/neighbours family/families visitor/visitors",
    "intransitive": "wait/waits/waited stay/stays/stayed return/returns/returned "
    "smile/smiles/smiled move/moves/moved",
    "transitive": "see/sees/saw like/likes/liked take/takes/took bring/brings/brought "
    "hold/holds/held want/wants/wanted need/needs/needed keep/keeps/kept",
    "adjectives": "big small old little new good happy strange poor bad",
}

DETERMINERS = {
    "any": "the my his her their our your no",
    "sg": "this that every each one another",
    "pl": "these those some many two three few several",
}
SUBJECT_PRONOUNS = {"sg": "he she it", "pl": "they we you i"}
NAMES = "anna tom maria peter lucy james sarah david"
OBJECT_PRONOUNS = "it them him her us me"
PREPOSITIONS = "in near with behind under from on beside at over"
ADVERBS = "slowly quickly quietly again together alone softly loudly suddenly happily"
TIME_ADVERBS = {
    "present": "today now sometimes usually often tonight",
    "past": "yesterday once earlier later finally suddenly",
}
CONJUNCTIONS = "and but while because so when"

TENSES = ("present", "past")
NUMBERS = ("sg", "pl")

# The grammar. Subject states carry the subject's number n; object and verb-phrase states do not
# need it. Transitions are written as {next: weight}; "CLAUSE_END" goes on to a conjunction with
# probability p_conj and ends the sentence otherwise.
_SUBJECT = ["DET", "ADJ", "NOUN", "PRON", "PREP", "PDET", "PADJ", "PNOUN", "VI", "VT"]
STATES = (
    ["TADV"]
    + [f"S{slot}_{n}" for n in NUMBERS for slot in _SUBJECT]
    + [f"O{slot}_{n}" for n in NUMBERS for slot in ("DET", "ADJ", "NOUN")]
    + ["OPRON", "ADV", "VPREP", "VPDET", "VPADJ", "VPNOUN", "CONJ"]
)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic source (all that the source depends on).

    topics : how many of the topics in ``TOPICS`` to use (1 to 8).
    words_per_list : keep only the first k words of every word list (None keeps all). The
        default 12 shortens only the noun lists; 1 makes a tiny source for tests.
    zipf : word weights within a list fall off as 1 / rank**zipf.
    topic_purity : share of a topic's own nouns, verbs and adjectives against ``GENERAL`` ones.
    p_conj : probability that a finished clause is followed by a conjunction and another clause.
    p_time_adverb : probability that a sentence opens with a time adverb (it reveals the tense).
    """

    topics: int = 6
    words_per_list: int | None = 12
    zipf: float = 0.8
    topic_purity: float = 0.9
    p_conj: float = 0.3
    p_time_adverb: float = 0.15

    def __post_init__(self) -> None:
        if not 1 <= self.topics <= len(TOPICS):
            raise ValueError(f"topics must be in 1..{len(TOPICS)}, got {self.topics}")
        if self.words_per_list is not None and self.words_per_list < 1:
            raise ValueError("words_per_list must be positive")
        for name in ("topic_purity", "p_conj", "p_time_adverb"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")


# ---------------------------------------------------------------------------------------------
# The source.


@dataclass(frozen=True)
class HMM:
    """A mixture of C hidden Markov models over Q states, each of which emits whole sentences.

    See the module docstring for the arrays and their shapes. ``components`` and ``states``
    name the C components and Q states; ``vocab`` lists the n_vocab words.
    """

    start: Array
    trans: Array
    end: Array
    emit: Array
    vocab: tuple[str, ...]
    components: tuple[str, ...] = ()
    states: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        C, Q = self.start.shape
        shapes_ok = self.trans.shape == (C, Q, Q) and self.end.shape == (C, Q)
        if not shapes_ok or self.emit.shape != (C, Q, len(self.vocab)):
            raise ValueError("HMM arrays do not have matching shapes")
        if not (
            np.isclose(self.start.sum(), 1.0)
            and np.allclose(self.trans.sum(axis=2) + self.end, 1.0)
            and np.allclose(self.emit.sum(axis=2), 1.0)
        ):
            raise ValueError("HMM start, trans + end, and emit rows must each sum to 1")

    @property
    def n_vocab(self) -> int:
        return len(self.vocab)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Word -> id."""
        return {w: i for i, w in enumerate(self.vocab)}

    def word_ids(self, sentence: str) -> Array:
        """The ids of a sentence's words; -1 for a word the source never emits."""
        return np.array([self.index.get(w, -1) for w in sentence.split()], dtype=np.int64)

    def mean_length(self) -> float:
        """Expected number of words in a sentence: sum_c start[c] (I - trans[c])^-1 1."""
        C, Q = self.start.shape
        visits = [np.linalg.solve(np.eye(Q) - self.trans[c].T, self.start[c]) for c in range(C)]
        return float(np.sum(visits))

    def length_probs(self, max_len: int) -> Array:
        """P(sentence has exactly n words) for n = 1..max_len, from the state chain alone
        (emissions play no part). Returns shape (max_len,)."""
        occupancy = self.start.copy()  # (C, Q): P(c, state of word n, sentence reached word n)
        probs = np.empty(max_len)
        for n in range(max_len):
            probs[n] = np.sum(occupancy * self.end)
            occupancy = np.einsum("cq,cqr->cr", occupancy, self.trans)
        return probs

    def sample(self, n: int, rng: np.random.Generator) -> list[Array]:
        """Draw n independent sentences as arrays of word ids (the end is not included).

        All n sentences advance together, one word per loop step; each draw inverts a
        cumulative distribution with a single ``searchsorted`` over all rows at once.
        """
        C, Q = self.start.shape
        first = _cumulative(self.start.reshape(1, C * Q))
        comp, state = np.divmod(_draw(first, C * Q, np.zeros(n, np.int64), rng), Q)
        next_table = np.concatenate([self.trans, self.end[:, :, None]], axis=2)  # (C, Q, Q+1)
        next_table = _cumulative(next_table.reshape(C * Q, Q + 1))
        emit_table = _cumulative(self.emit.reshape(C * Q, self.n_vocab))
        active = np.arange(n)
        steps = []  # (sentence indices, word ids) per position
        while active.size:
            row = comp[active] * Q + state[active]
            steps.append((active, _draw(emit_table, self.n_vocab, row, rng)))
            nxt = _draw(next_table, Q + 1, row, rng)
            going_on = nxt < Q
            state[active[going_on]] = nxt[going_on]
            active = active[going_on]
        lengths = np.zeros(n, np.int64)
        for idx, _ in steps:
            lengths[idx] += 1
        words = np.empty((n, len(steps)), np.int64)
        for t, (idx, w) in enumerate(steps):
            words[idx, t] = w
        return [words[i, : lengths[i]] for i in range(n)]

    def log_prob(
        self, sentences: Sequence[Array], chunk: int = 1024, progress: tqdm | None = None
    ) -> Array:
        """Natural log of P(w_1..w_n, </s>) for each sentence (the forward algorithm).

        Parameters
        ----------
        sentences : N arrays of word ids, each of length >= 1. An id outside the vocabulary
            (e.g. -1 from ``word_ids``) gives -inf.
        chunk : sentences scored together (bounds memory at Q * chunk * C floats per array).
        progress : optional tqdm bar, advanced by the number of sentences scored.

        Returns
        -------
        (N,) float64 log probabilities.

        Good: ``log_prob([ids("the dog sleeps")])`` includes P(end | last state).
        Bad: appending an id for "</s>" (the source has no such word; the end is implicit).
        """
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        if lengths.size and lengths.min() < 1:
            raise ValueError("every sentence needs at least one word")
        order = np.argsort(-lengths, kind="stable")  # longest first: the live ones are a prefix
        out = np.empty(len(sentences))
        for lo in range(0, len(sentences), chunk):
            idx = order[lo : lo + chunk]
            out[idx] = self._forward([sentences[i] for i in idx], lengths[idx])
            if progress is not None:
                progress.update(len(idx))
        return out

    @functools.cached_property
    def _moves(self) -> list[tuple[int, int, Array]]:
        """(i, j, trans[:, i, j]) for every move i -> j that some component can make."""
        return [(i, j, self.trans[:, i, j].copy()) for i, j in np.argwhere(self.trans.any(axis=0))]

    def _forward(self, sentences: list[Array], lengths: Array) -> Array:
        """Forward algorithm on sentences sorted by decreasing length. Returns (N,) log probs.

        alpha[q, i, c] = P(w_1..w_t, c, q_t = q) / (product of the scales so far), for
        sentence i; the sentences still going on at step t are alpha[:, :live]. The grammar is
        sparse (a state leads to a few others), so alpha moves one possible transition at a
        time, each a product over all live sentences and components: about 15x fewer
        operations than a dense (Q, Q) product.
        """
        C, Q, K = self.emit.shape
        N, T = len(sentences), int(lengths[0])
        flat = np.concatenate([np.asarray(s, np.int64) for s in sentences])
        bad = (flat < 0) | (flat >= K)
        valid = ~np.logical_or.reduceat(bad, np.cumsum(lengths) - lengths)
        words = np.zeros((N, T), np.int64)
        words[np.arange(T) < lengths[:, None]] = np.where(bad, 0, flat)
        emit_w = np.ascontiguousarray(self.emit.transpose(1, 2, 0))  # (Q, K, C)
        end = self.end.T  # (Q, C)
        logp = np.zeros(N)
        alpha = self.start.T[:, None, :] * emit_w[:, words[:, 0]]  # (Q, N, C)
        live = N
        with np.errstate(divide="ignore", invalid="ignore"):
            for t in range(T):
                if t > 0:
                    moved = np.zeros((Q, live, C))
                    for i, j, p in self._moves:
                        moved[j] += alpha[i, :live] * p
                    alpha = np.multiply(moved, emit_w[:, words[:live, t]], out=moved)
                scale = alpha.sum(axis=(0, 2))  # (live,) = P(w_t | w_<t)
                logp[:live] += np.log(scale)
                alpha *= (1.0 / np.where(scale > 0, scale, 1.0))[None, :, None]
                done = live - int(np.sum(lengths[:live] == t + 1))  # these end after word t+1
                logp[done:live] += np.log(np.einsum("qnc,qc->n", alpha[:, done:live], end))
                live = done
        logp[~valid] = -np.inf
        return logp


def _cumulative(probs: Array) -> Array:
    """(R, K) rows of probabilities -> (R * K,) increasing array: row r's cumulative sums + r.

    Adding the row number makes one sorted array, so that a single searchsorted draws from
    many rows at once (see ``_draw``).
    """
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]  # exactly 1 at the end, so no draw falls past the last word
    return (cum + np.arange(len(probs))[:, None]).ravel()


def _draw(flat: Array, K: int, rows: Array, rng: np.random.Generator) -> Array:
    """One draw (a column in 0..K-1) from each row ``rows[i]`` of a ``_cumulative`` table."""
    pos = np.searchsorted(flat, rows + rng.random(rows.size), side="right")
    return np.minimum(pos - rows * K, K - 1)


@functools.lru_cache(maxsize=4)
def make_source(config: SynthConfig = SynthConfig()) -> HMM:
    """Build the mixture HMM that ``config`` describes (deterministic, no randomness; cached,
    so its arrays are read-only)."""
    topics = list(TOPICS)[: config.topics]
    lists = _WordLists(config)
    components = [(z, tense) for z in topics for tense in TENSES]
    C, Q = len(components), len(STATES)
    s = {name: i for i, name in enumerate(STATES)}

    trans = np.zeros((C, Q, Q))
    end = np.zeros((C, Q))
    start = np.zeros((C, Q))
    for q, nexts in _grammar(config).items():
        for name, p in nexts.items():
            if name == "END":
                end[:, s[q]] += p
            else:
                trans[:, s[q], s[name]] += p
    subject = _subject_start()
    for c in range(C):
        start[c, s["TADV"]] = config.p_time_adverb
        for name, p in subject.items():
            start[c, s[name]] += (1 - config.p_time_adverb) * p
    start /= C

    vocab = lists.vocab()
    index = {w: i for i, w in enumerate(vocab)}
    emit = np.zeros((C, Q, len(vocab)))
    for c, (topic, tense) in enumerate(components):
        for q, name in enumerate(STATES):
            for word, p in lists.emissions(name, topic, tense).items():
                emit[c, q, index[word]] += p
    for array in (start, trans, end, emit):
        array.setflags(write=False)
    return HMM(
        start,
        trans,
        end,
        emit,
        tuple(vocab),
        components=tuple(f"{z}/{tense}" for z, tense in components),
        states=tuple(STATES),
    )


def _subject_start() -> dict[str, float]:
    """Where a clause starts: the subject's number, then a noun phrase or a pronoun/name."""
    return {
        "SDET_sg": 0.55 * 0.7,
        "SPRON_sg": 0.55 * 0.3,
        "SDET_pl": 0.45 * 0.75,
        "SPRON_pl": 0.45 * 0.25,
    }


def _grammar(config: SynthConfig) -> dict[str, dict[str, float]]:
    """Transitions between states ("END" ends the sentence)."""
    clause_end = {"CONJ": config.p_conj, "END": 1 - config.p_conj}
    g: dict[str, dict[str, float]] = {"TADV": _subject_start(), "CONJ": _subject_start()}
    for n in NUMBERS:
        verb = {f"SVI_{n}": 0.45, f"SVT_{n}": 0.55}
        g[f"SDET_{n}"] = {f"SADJ_{n}": 0.35, f"SNOUN_{n}": 0.65}
        g[f"SADJ_{n}"] = {f"SADJ_{n}": 0.15, f"SNOUN_{n}": 0.85}
        g[f"SNOUN_{n}"] = {f"SPREP_{n}": 0.2, **{k: 0.8 * p for k, p in verb.items()}}
        g[f"SPRON_{n}"] = verb
        g[f"SPREP_{n}"] = {f"SPDET_{n}": 1.0}
        g[f"SPDET_{n}"] = {f"SPADJ_{n}": 0.3, f"SPNOUN_{n}": 0.7}
        g[f"SPADJ_{n}"] = {f"SPNOUN_{n}": 1.0}
        g[f"SPNOUN_{n}"] = verb
        g[f"SVI_{n}"] = {"ADV": 0.3, "VPREP": 0.35, **{k: 0.35 * p for k, p in clause_end.items()}}
        g[f"SVT_{n}"] = {"ODET_sg": 0.4, "ODET_pl": 0.35, "OPRON": 0.25}
        g[f"ODET_{n}"] = {f"OADJ_{n}": 0.35, f"ONOUN_{n}": 0.65}
        g[f"OADJ_{n}"] = {f"OADJ_{n}": 0.1, f"ONOUN_{n}": 0.9}
    after_object = {"ADV": 0.2, "VPREP": 0.25, **{k: 0.55 * p for k, p in clause_end.items()}}
    for q in ("ONOUN_sg", "ONOUN_pl", "OPRON"):
        g[q] = after_object
    g["ADV"] = {"VPREP": 0.2, **{k: 0.8 * p for k, p in clause_end.items()}}
    g["VPREP"] = {"VPDET": 1.0}
    g["VPDET"] = {"VPADJ": 0.3, "VPNOUN": 0.7}
    g["VPADJ"] = {"VPNOUN": 1.0}
    g["VPNOUN"] = clause_end
    assert set(g) == set(STATES)
    return g


class _WordLists:
    """The word lists of a config, and each state's emission distribution."""

    def __init__(self, config: SynthConfig):
        self.config = config
        self.topics = list(TOPICS)[: config.topics]

    def _cut(self, text: str) -> list[str]:
        words = text.split()
        return words[: self.config.words_per_list] if self.config.words_per_list else words

    def _forms(self, text: str, form: int) -> list[str]:
        return [w.split("/")[form] for w in self._cut(text)]

    def _zipf(self, words: list[str], mass: float = 1.0) -> dict[str, float]:
        weights = 1.0 / np.arange(1, len(words) + 1) ** self.config.zipf
        out: dict[str, float] = {}
        for w, p in zip(words, mass * weights / weights.sum()):
            out[w] = out.get(w, 0.0) + float(p)
        return out

    def _mix(self, *parts: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in parts:
            for w, p in part.items():
                out[w] = out.get(w, 0.0) + p
        return out

    def _topical(self, kind: str, topic: str, form: int | None) -> dict[str, float]:
        """A topic's own words of one kind mixed with the general ones."""
        purity = self.config.topic_purity
        own, general = TOPICS[topic][kind], GENERAL[kind]
        if form is None:
            return self._mix(
                self._zipf(self._cut(own), purity), self._zipf(self._cut(general), 1 - purity)
            )
        return self._mix(
            self._zipf(self._forms(own, form), purity),
            self._zipf(self._forms(general, form), 1 - purity),
        )

    def emissions(self, state: str, topic: str, tense: str) -> dict[str, float]:
        slot, _, n = state.partition("_")
        if state == "TADV":
            return self._zipf(self._cut(TIME_ADVERBS[tense]))
        if slot in ("SDET", "ODET"):
            return self._mix(
                self._zipf(self._cut(DETERMINERS["any"]), 0.6),
                self._zipf(self._cut(DETERMINERS[n]), 0.4),
            )
        if slot in ("SPDET", "VPDET"):
            return self._zipf(self._cut(DETERMINERS["any"]))
        if slot in ("SADJ", "SPADJ", "OADJ", "VPADJ"):
            return self._topical("adjectives", topic, None)
        if slot in ("SNOUN", "ONOUN"):
            return self._topical("nouns", topic, NUMBERS.index(n))
        if slot in ("SPNOUN", "VPNOUN"):
            return self._mix(
                *(
                    {w: p * share for w, p in self._topical("nouns", topic, form).items()}
                    for form, share in ((0, 0.6), (1, 0.4))
                )
            )
        if slot == "SPRON":
            pronouns = self._zipf(self._cut(SUBJECT_PRONOUNS[n]), 0.6 if n == "sg" else 1.0)
            names = self._zipf(self._cut(NAMES), 0.4) if n == "sg" else {}
            return self._mix(pronouns, names)
        if slot in ("SVI", "SVT"):
            form = 2 if tense == "past" else (1 if n == "sg" else 0)
            kind = "intransitive" if slot == "SVI" else "transitive"
            return self._topical(kind, topic, form)
        simple = {
            "OPRON": OBJECT_PRONOUNS,
            "ADV": ADVERBS,
            "VPREP": PREPOSITIONS,
            "SPREP": PREPOSITIONS,
            "CONJ": CONJUNCTIONS,
        }
        return self._zipf(self._cut(simple[slot]))

    def vocab(self) -> list[str]:
        words = set()
        for topic in self.topics:
            for tense in TENSES:
                for state in STATES:
                    words.update(self.emissions(state, topic, tense))
        return sorted(words)


# ---------------------------------------------------------------------------------------------
# Corpora and their oracle.


BYTES_PER_TOKEN = 100  # peak memory while sampling and writing (measured: about 150)


def split_budgets(tokens: int) -> dict[str, int]:
    """Words per split for a corpus of ``tokens`` words (90/5/5)."""
    if tokens < MIN_TOKENS:
        raise DataError(
            f"too few tokens ({tokens}) to make train, valid and test splits: "
            f"use at least {MIN_TOKENS}"
        )
    valid = test = round(tokens * SPLIT_FRACTIONS["valid"])
    return {"train": tokens - valid - test, "valid": valid, "test": test}


def sample_words(source: HMM, budget: int, rng: np.random.Generator) -> list[Array]:
    """Sentences drawn until they hold at least ``budget`` words (the last one may cross it)."""
    sentences: list[Array] = []
    total = 0
    batch = int(budget / source.mean_length() * 1.05) + 16
    while total < budget:
        sentences.extend(source.sample(batch, rng))
        total = sum(len(s) for s in sentences)
    cum = np.cumsum([len(s) for s in sentences])
    return sentences[: int(np.searchsorted(cum, budget)) + 1]


def corpus_stats(logprobs: Array, sentences: Sequence[Array]) -> dict:
    """Perplexity under the ``lm perplexity`` convention, with the counts it rests on."""
    words = int(sum(len(s) for s in sentences))
    total = float(np.sum(logprobs))
    return {
        "ppl": perplexity(total, words + len(sentences)),
        "log10prob": total / LN10,
        "sentences": len(sentences),
        "words": words,
    }


def generate(
    tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    config: SynthConfig = SynthConfig(),
    progress: bool = False,
) -> tuple[dict[str, list[str]], dict]:
    """Sample a corpus and compute its oracle.

    Returns ``(splits, info)``: splits maps "train", "valid", "test" to lists of sentences
    (words joined by single spaces) and info is what ``oracle.json`` holds. Each split draws
    from its own random stream spawned from ``seed``, so the result depends on nothing else.
    """
    budgets = split_budgets(tokens)
    source = make_source(config)
    streams = np.random.SeedSequence(seed).spawn(len(budgets))
    ids = {
        name: sample_words(source, budget, np.random.default_rng(stream))
        for (name, budget), stream in zip(budgets.items(), streams)
    }
    total = sum(len(s) for s in ids.values())
    stats = {}
    with tqdm(
        total=total, desc="oracle", unit="sent", disable=not files.show_progress(progress)
    ) as bar:
        for name, sentences in ids.items():
            stats[name] = corpus_stats(source.log_prob(sentences, progress=bar), sentences)
    vocab = source.vocab
    splits = {
        name: [" ".join(vocab[i] for i in s) for s in sentences] for name, sentences in ids.items()
    }
    info = {
        "format": FORMAT_VERSION,
        "corpus": "synth",
        "seed": seed,
        "tokens": tokens,
        "convention": "ppl = exp(-sum ln P(sentence + </s>) / (words + sentences)); "
        "</s> is predicted, <s> is not; sentences are independent",
        "source": {
            **dataclasses.asdict(config),
            "components": len(source.components),
            "states": len(source.states),
            "vocab_size": source.n_vocab,
            "mean_sentence_words": source.mean_length(),
        },
        "splits": stats,
    }
    return splits, info


def build(
    outdir: str | Path,
    tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    force: bool = False,
    config: SynthConfig = SynthConfig(),
    progress: bool = False,
) -> dict:
    """Write train.txt, valid.txt, test.txt and oracle.json into ``outdir``; return the oracle.

    Refuses a non-empty ``outdir`` unless ``force`` (then only these four files are replaced).
    Raises DataError for too few tokens or an outdir that cannot be written.
    """
    outdir = Path(outdir)
    split_budgets(tokens)  # fail before any work
    memory.require(tokens * BYTES_PER_TOKEN, f"a synthetic corpus of {tokens} words")
    check_outdir(outdir, force)
    splits, info = generate(tokens, seed, config, progress)
    for name, lines in splits.items():
        write_atomic(outdir / f"{name}.txt", "".join(line + "\n" for line in lines))
    write_atomic(outdir / "oracle.json", json.dumps(info, indent=2) + "\n")
    return info


def oracle_log_probs(lines: Iterable[str], config: SynthConfig = SynthConfig()) -> Array:
    """ln P(sentence, </s>) under the source for sentences given as text (-inf if impossible)."""
    source = make_source(config)
    return source.log_prob([source.word_ids(line) for line in lines])
