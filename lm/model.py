"""The network: one input layer, one cell, one head, composed in one place.

    d_t = x_t U + b            input layer (lm.inputs): dense, one-hot (row U[w_t]), embedding E[w_t] U
    s_t = cell(d_t, s_{t-1})   cell (lm.cells), run over a window by the drivers in lm.core
    o_t = head(s_t)            head (lm.heads): softmax over the next word, or linear on s_T

Module map. ``activations`` (f and f') -> ``cells`` (one step and its vector-Jacobian product)
-> ``core`` (the loop over T, full and truncated backward, resets) ; ``inputs`` and ``heads``
beside it ; ``model`` (this file: composition, losses, one step, log-probabilities) ;
``optim`` (optimisers, clipping, averaging) ; ``training`` (the loop) ; ``scoring`` and
``generation`` (on any object with the scorer/stepper methods below) ; ``api`` (KenLM's
names) ; ``checkpoint`` (the model directory) ; ``cosine`` (the textbook task, the same
Network with a dense input and a linear head).

The three contracts (row vectors; T steps, B streams, H hidden units, G gates, n_s the
state width, N positions):
    input layer  param_shapes(width), init(width, rng), feature_width(p),
                 drive(p, x, mask) -> (D (T, B, G*H), cache),
                 backward(p, x, cache, dD, sparse) -> (grads, dX)
    cell         gates, state_size(H), param_shapes(H), init(H, rng), new_cache, step,
                 hidden(S) -> (..., H), prepare, vjp, weight_grads   (see lm.cells)
    head         reads ("all" | "last"), sparse_grads, param_shapes(H), init(H, rng, counts),
                 loss(p, S (N, H), y, scale) -> (loss_sum, dS, grads),
                 target_logprobs(p, S, y) -> (N,), next_logprobs(p, S) -> (N, n_vocab)
Every part names its own arrays (U, b, E; W; V, c; Vc, cc) in one flat parameter dict, which
is also what optimisers, gradients and ``weights.npz`` use. Adding a cell or a head touches its own
module, ``ModelConfig`` (its name in the list the config accepts) and one CLI option.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lm import activations, cells, core, heads, inputs, sparse
from lm.checks import is_int, is_real, require_choice

Array = np.ndarray


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters of a language model, saved in ``config.json``.
    Raises ValueError naming the field when a value cannot describe a network."""

    n_vocab: int
    hidden: int = 200
    input: str = "onehot"  # one of inputs.WORD_KINDS
    embed_dim: int = 0  # used when input == "embedding"
    activation: str = "tanh"  # the Elman cell's f
    alpha: float = 0.01  # leaky ReLU slope
    cell: str = "elman"  # one of cells.NAMES
    output: str = "full"  # one of heads.NAMES
    # output == "class": the class boundaries 0 = b_0 < ... < b_C = n_vocab (heads.class_bounds)
    classes: tuple[int, ...] | None = field(default=None, repr=False)
    tie: bool = False  # the head's V is E^T (needs input "embedding" with embed_dim == hidden)

    def __post_init__(self):
        for name in ("n_vocab", "hidden"):
            if not (is_int(getattr(self, name)) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        require_choice("input", self.input, inputs.WORD_KINDS)
        if self.input == "embedding" and not (is_int(self.embed_dim) and self.embed_dim >= 1):
            raise ValueError(f"embed_dim must be an integer >= 1, got {self.embed_dim!r}")
        require_choice("activation", self.activation, activations.NAMES)
        if not (is_real(self.alpha) and np.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number, got {self.alpha!r}")
        require_choice("cell", self.cell, cells.NAMES)
        if self.cell != "elman" and self.activation != "tanh":
            raise ValueError(
                f"the {self.cell} cell has fixed nonlinearities: activation applies to the "
                f"elman cell only, got {self.activation!r}"
            )
        require_choice("output", self.output, heads.NAMES)
        if self.output == "class":
            heads.check_bounds(self.classes, self.n_vocab)
            object.__setattr__(self, "classes", tuple(self.classes))  # hashable; JSON: a list
        elif self.classes is not None:
            raise ValueError(f"classes is only for output 'class', not {self.output!r}")
        if not isinstance(self.tie, bool):
            raise ValueError(f"tie must be true or false, got {self.tie!r}")
        if self.tie and not (self.input == "embedding" and self.embed_dim == self.hidden):
            raise ValueError(
                "tie (the output weights as the transposed embedding) needs input 'embedding' "
                f"with embed_dim == hidden, got input {self.input!r}, embed_dim "
                f"{self.embed_dim}, hidden {self.hidden}"
            )

    @classmethod
    def from_counts(cls, n_vocab: int, counts, n_classes: int | None = None, **fields):
        """The configuration of a new model whose class boundaries (output "class") are cut
        from ``counts`` (n_vocab,), how often each id is predicted in the training text, into
        ``n_classes`` classes (None: ``heads.default_classes(n_vocab)``; see
        ``heads.class_bounds``). ``output=None`` picks the head by the vocabulary's size
        (``heads.default_output``; with n_classes, the class head). ValueError when n_classes
        is not in 1..n_vocab, or is given for another head.

            ModelConfig.from_counts(10000, counts, output="class")       # 100 classes
            ModelConfig.from_counts(10000, counts, output="full", n_classes=100)  # ValueError
        """
        if fields.get("output", "full") is None:  # by the size: heads.default_output
            fields["output"] = heads.default_output(n_vocab) if n_classes is None else "class"
        if fields.get("output", "full") == "class":
            C = heads.default_classes(n_vocab) if n_classes is None else n_classes
            fields["classes"] = heads.class_bounds(counts, C)
        elif n_classes is not None:
            raise ValueError("a number of classes is only for the class head (output 'class')")
        return cls(n_vocab=n_vocab, **fields)

    def to_dict(self) -> dict:
        return asdict(self)

    def parts(self):
        """(input layer, cell, head) this configuration describes."""
        layer = inputs.make(self.input, self.n_vocab, self.embed_dim)
        return (
            layer,
            cells.make(self.cell, self.activation, self.alpha),
            heads.make(self.output, self.n_vocab, self.classes),
        )

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every parameter array this configuration implies."""
        return Network(*self.parts(), self.hidden, tie=self.tie).param_shapes()


def dropout_mask(rng: np.random.Generator, shape, p: float, dtype) -> Array:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p)."""
    return (rng.random(shape, dtype=np.float32) >= p).astype(dtype) / np.dtype(dtype).type(1 - p)


class Network:
    """Input layer -> cell -> head over one flat parameter dict ``params``.

    ``config`` is the ModelConfig of a language model (None for a network assembled from
    parts, such as the cosine task's). With ``tie`` the head's word weights are the input
    embedding transposed, V = E^T (H, n_vocab) (Press and Wolf 2017; Inan et al. 2017):
    ``params`` holds no "V", the head reads the view E.T, and the gradient it gives V is added
    to E's (``lm.sparse.add_transposed``).
    """

    def __init__(
        self, layer, cell, head, hidden: int, params: dict | None = None, config=None,
        tie: bool = False,
    ):  # fmt: skip
        self.inputs, self.cell, self.head, self.hidden = layer, cell, head, hidden
        self.params = params if params is not None else {}
        self.config = config
        self.tie = tie

    # ----- construction

    @classmethod
    def build(cls, config: ModelConfig, params: dict[str, Array]) -> Network:
        """The language model that ``config`` describes, with the given weights."""
        return cls(*config.parts(), config.hidden, params, config, tie=config.tie)

    @classmethod
    def create(
        cls, config: ModelConfig, rng: np.random.Generator, dtype=np.float32, counts=None
    ) -> Network:
        """A freshly initialised language model; ``counts`` (n_vocab,) of the predicted
        training tokens start the output bias at the log unigram frequencies."""
        net = cls.build(config, {})
        net.params = net.init_params(rng, dtype, counts)
        return net

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        H, width = self.hidden, self.cell.gates * self.hidden
        shapes = {**self.cell.param_shapes(H), **self.head.param_shapes(H)}
        shapes.update(self.inputs.param_shapes(width))
        if self.tie:
            del shapes["V"]
        return shapes

    def init_params(self, rng: np.random.Generator, dtype=np.float32, counts=None) -> dict:
        """Each part's initialisation (see its class), drawn in the order cell, head, input."""
        H = self.hidden
        params = {**self.cell.init(H, rng), **self.head.init(H, rng, counts)}
        params.update(self.inputs.init(self.cell.gates * H, rng))
        params["b"] = params["b"] + self.cell.drive_bias(H)  # e.g. the LSTM's forget gate
        if self.tie:
            del params["V"]  # drawn all the same, so that the other parts' draws do not move
        return {k: np.asarray(v).astype(dtype) for k, v in params.items()}

    def head_params(self) -> dict:
        """The parameters as the head reads them: ``params``, with V = E.T when tied."""
        if not self.tie:
            return self.params
        return {**self.params, "V": self.params["E"].T}

    @property
    def dtype(self):
        return self.params["W"].dtype

    def zero_state(self, B: int) -> Array:
        """(B, n_s) zeros: the state before any input."""
        return np.zeros((B, self.cell.state_size(self.hidden)), dtype=self.dtype)

    # ----- whole windows (training, batched scoring)

    def states(self, x: Array, S0: Array, keep: Array | None = None) -> Array:
        """States after each input: x (T, B) ids or (T, B, n_in), S0 (B, n_s) ->
        S (T+1, B, n_s), S[0] = S0."""
        D, _ = self.inputs.drive(self.params, x)
        S, _ = core.forward(self.cell, self.params, D, S0, keep)
        return S

    def loss_and_grads(
        self,
        x: Array,
        y: Array,
        S0: Array,
        truncate: int | None = None,
        keep: Array | None = None,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, dict[str, Array], Array]:
        """The loss over a window and its gradients.

        Parameters
        ----------
        x : (T, B) input ids, or (T, B, n_in) floats for a dense input.
        y : targets: (T, B) ids when the head reads every position (y[t] is the word after
            x[t]); (B, n_out) when it reads the last state.
        S0 : (B, n_s) state carried in (not backpropagated into).
        truncate : BPTT horizon K within the window, None for full (see lm.core).
        keep : optional (T, B, 1) reset mask (0 zeroes the state entering that step).
        dropout : probability p of zeroing each unit of the input representation and of the
            states fed to the head (non-recurrent dropout, as Zaremba et al.; survivors are
            scaled by 1/(1-p)). Masks are drawn from ``rng``.

        Returns
        -------
        loss_sum : float, the head's loss summed over its positions (T*B, or B); the
            gradients are of the mean, loss_sum / positions.
        grads : dict with the same keys as ``params``, arrays of the same shapes; with a head
            whose ``sparse_grads`` is true (the class head) the vocabulary-sized ones are
            ``lm.sparse`` gradients (Rows for U or E, Cols for V and c) of that shape.
        s_last : (B, n_s) the final state, to carry into the next window.
        """
        p, H = self.params, self.hidden
        T, B = x.shape[:2]
        in_mask = out_mask = None
        if dropout:
            in_shape = (T, B, self.inputs.feature_width(p))
            in_mask = dropout_mask(rng, in_shape, dropout, self.dtype)
        D, in_cache = self.inputs.drive(p, x, in_mask)  # (T, B, G*H)
        S, cache = core.forward(self.cell, p, D, S0, keep)
        last = self.head.reads == "last"
        S_out = self.cell.hidden(S[-1] if last else S[1:]).reshape(-1, H)  # (N, H)
        if dropout:
            out_mask = dropout_mask(rng, S_out.shape, dropout, self.dtype)
            S_out = S_out * out_mask
        targets = y if last else y.reshape(-1)
        loss_sum, dH, grads = self.head.loss(
            self.head_params(), S_out, targets, scale=1.0 / len(S_out)
        )
        if out_mask is not None:
            dH *= out_mask
        dS = self._state_grad(dH, T, B, last)
        dD, cell_grads, _ = core.backward(self.cell, p, dS, S, cache, truncate)
        # a head with sparse gradients (the class head) takes the input rows sparse too
        in_grads, _ = self.inputs.backward(p, x, in_cache, dD, sparse=self.head.sparse_grads)
        grads.update(cell_grads)
        grads.update(in_grads)
        if self.tie:
            grads["E"] = sparse.add_transposed(grads["E"], grads.pop("V"))
        return loss_sum, grads, S[-1].copy()

    def _state_grad(self, dH: Array, T: int, B: int, last: bool) -> Array:
        """The head's gradient at the hidden part of the states as (T, B, n_s)."""
        n_s = self.cell.state_size(self.hidden)
        if not last and n_s == self.hidden:
            return dH.reshape(T, B, n_s)
        dS = np.zeros((T, B, n_s), dtype=dH.dtype)
        target = self.cell.hidden(dS[-1:] if last else dS)  # a view
        target[...] = dH.reshape(target.shape)
        return dS

    def target_logprobs(self, x: Array, y: Array, S0: Array, keep: Array | None = None):
        """ln p(y[t] | history) at every position: x, y (T, B) ->
        ((T, B) float64, S (T+1, B, n_s))."""
        S = self.states(x, S0, keep)
        lp = self.head_logprobs(self.cell.hidden(S[1:]).reshape(-1, self.hidden), y.reshape(-1))
        return lp.reshape(x.shape), S

    def head_logprobs(self, hidden: Array, y: Array) -> Array:
        """ln p(y_i | h_i) for N hidden rows (N, H) and targets (N,): (N,) float64."""
        return self.head.target_logprobs(self.head_params(), hidden, y)

    def predict(self, x: Array, S0: Array | None = None) -> Array:
        """The linear head's output on the last state: x (T, B, n_in) -> (B, n_out)."""
        S0 = self.zero_state(x.shape[1]) if S0 is None else S0
        return self.head.predict(self.params, self.cell.hidden(self.states(x, S0)[-1]))

    # ----- one step at a time (incremental scoring, generation)

    def step(self, ids: Array, s: Array) -> Array:
        """Feed one word per stream: ids (B,), s (B, n_s) -> next state (B, n_s)."""
        d, _ = self.inputs.drive(self.params, ids)
        return core.step(self.cell, self.params, d, s)

    def next_logprobs(self, s: Array) -> Array:
        """ln p(next word | state): s (B, n_s) -> (B, n_vocab), each row a log-distribution."""
        return self.head.next_logprobs(self.head_params(), self.cell.hidden(s))
