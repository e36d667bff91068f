"""The network: one input layer, one cell, one head, composed in one place.

    d_t = x_t U + b            input layer (lm.inputs): dense, one-hot (row U[w_t]), embedding E[w_t] U
    s_t = cell(d_t, s_{t-1})   cell (lm.cells), run over a window by the drivers in lm.core
    o_t = head(s_t)            head (lm.heads): softmax over the next word, or linear on s_T

Stacked layers (``layers`` L >= 2): layer l = 2..L is the same cell with its own weights,
driven by the hidden part h^{l-1}_t of the layer below through a dense projection,
d^l_t = h^{l-1}_t U{l} + b{l}, and the head reads the top layer. A window runs layer by
layer, so each layer's drive is one product over all T*B positions; with dropout p, the
h^{l-1} fed upwards is dropped too (Zaremba et al. 2014: non-recurrent connections only).
Layer 1's arrays keep their names (U, b, W, ...); layer l's carry the suffix l (U2, b2, W2,
bh2 for a GRU's second layer). The state of the network is the layers' states side by side,
s = [s^1 | ... | s^L] of width L*n_s, so everything that carries a state (scoring,
generation, the stateful API, checkpoints) handles any depth unchanged. Truncation to a
horizon K (lm.core) applies within each layer.

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
from typing import NamedTuple

from lm import activations, backend, cells, core, heads, inputs, sparse
from lm.backend import numpy as np
from lm.checks import is_int, is_real, require_choice

Array = backend.Array


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
    layers: int = 1  # stacked cells (module docstring)

    def __post_init__(self):
        for name in ("n_vocab", "hidden", "layers"):
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
        return Network(*self.parts(), self.hidden, tie=self.tie, layers=self.layers).param_shapes()


def dropout_mask(rng: np.random.Generator, shape, p: float, dtype, xp=np) -> Array:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), drawn on the host (so that
    every device sees the same numbers) and returned as an ``xp`` array."""
    mask = (rng.random(shape, dtype=np.float32) >= p).astype(dtype) / np.dtype(dtype).type(1 - p)
    return mask if xp is np else xp.asarray(mask)


class Network:
    """Input layer -> cell (``layers`` of them, stacked) -> head over one flat parameter dict
    ``params``.

    ``config`` is the ModelConfig of a language model (None for a network assembled from
    parts, such as the cosine task's). With ``tie`` the head's word weights are the input
    embedding transposed, V = E^T (H, n_vocab) (Press and Wolf 2017; Inan et al. 2017):
    ``params`` holds no "V", the head reads the view E.T, and the gradient it gives V is added
    to E's (``lm.sparse.add_transposed``). With ``layers`` L >= 2 the layers above the first
    read the one below through ``inputs.Dense(hidden)`` projections (module docstring).
    """

    def __init__(
        self, layer, cell, head, hidden: int, params: dict | None = None, config=None,
        tie: bool = False, layers: int = 1,
    ):  # fmt: skip
        self.inputs, self.cell, self.head, self.hidden = layer, cell, head, hidden
        self.params = params if params is not None else {}
        self.config = config
        self.tie = tie
        self.layers = layers
        self.upper = inputs.Dense(hidden)  # the input layer of layers 2..L
        self.n_s = cell.state_size(hidden)  # one layer's state width
        own = list(cell.param_shapes(hidden)) + list(self.upper.param_shapes(1))
        # layer l's arrays by the names its parts read: {"W": "W2", "U": "U2", ...}
        self._names = [None] + [{k: f"{k}{l}" for k in own} for l in range(2, layers + 1)]

    # ----- construction

    @classmethod
    def build(cls, config: ModelConfig, params: dict[str, Array]) -> Network:
        """The language model that ``config`` describes, with the given weights."""
        return cls(
            *config.parts(), config.hidden, params, config, tie=config.tie, layers=config.layers
        )

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
        upper = {**self.cell.param_shapes(H), **self.upper.param_shapes(width)}
        for names in self._names[1:]:
            shapes.update({names[k]: shape for k, shape in upper.items()})
        return shapes

    def init_params(self, rng: np.random.Generator, dtype=np.float32, counts=None) -> dict:
        """Each part's initialisation (see its class), drawn in the order cell, head, input."""
        H = self.hidden
        params = {**self.cell.init(H, rng), **self.head.init(H, rng, counts)}
        params.update(self.inputs.init(self.cell.gates * H, rng))
        params["b"] = params["b"] + self.cell.drive_bias(H)  # e.g. the LSTM's forget gate
        if self.tie:
            del params["V"]  # drawn all the same, so that the other parts' draws do not move
        for names in self._names[1:]:  # layers 2..L, after layer 1: its draws do not move
            upper = {**self.cell.init(H, rng), **self.upper.init(self.cell.gates * H, rng)}
            upper["b"] = upper["b"] + self.cell.drive_bias(H)
            params.update({names[k]: v for k, v in upper.items()})
        return {k: np.asarray(v).astype(dtype) for k, v in params.items()}

    def layer_params(self, l: int) -> dict:
        """Layer l's arrays (l = 0..L-1, bottom first) under the names its parts read: layer 0
        reads ``params`` itself, layer l >= 1 the arrays with the suffix l + 1, e.g. W2 as W."""
        if l == 0:
            return self.params
        return {k: self.params[name] for k, name in self._names[l].items()}

    def head_params(self) -> dict:
        """The parameters as the head reads them: ``params``, with V = E.T when tied."""
        if not self.tie:
            return self.params
        return {**self.params, "V": self.params["E"].T}

    @property
    def dtype(self):
        return self.params["W"].dtype

    @property
    def xp(self):
        """The array module of the weights: numpy, or cupy when they are on a GPU."""
        return backend.xp_of(self.params["W"])

    @property
    def device(self) -> str:
        """Where the weights are: "cpu" or "cuda"."""
        return "cuda" if backend.on_device(self.params["W"]) else "cpu"

    def to(self, device: str) -> Network:
        """Move the weights to ``device`` ("cpu" or "cuda"; ``lm.backend.resolve``) and return
        this network. Every method then takes host or device inputs (ids, masks, states) and
        keeps states on the device; log-probabilities come back as host arrays.

            net.to("cuda")   # needs CuPy and a GPU; DeviceError (one line) otherwise
        """
        self.params = backend.to_device(self.params, device)
        return self

    def _here(self, a):
        """``a`` (an array or None) as an array of the weights' module (no copy on the CPU)."""
        xp = self.xp
        return a if a is None or xp is np else xp.asarray(a)

    def zero_state(self, B: int) -> Array:
        """(B, L*n_s) zeros: the state before any input (every layer's, side by side)."""
        return self.xp.zeros((B, self.layers * self.n_s), dtype=self.dtype)

    def hidden_of(self, S: Array) -> Array:
        """What the head reads of network states: (..., L*n_s) -> (..., H), the top layer's
        hidden part."""
        return self.cell.hidden(S if self.layers == 1 else S[..., -self.n_s :])

    def _layer_state(self, s: Array, l: int) -> Array:
        """Layer l's part (..., n_s) of network states (..., L*n_s)."""
        return s if self.layers == 1 else s[..., l * self.n_s : (l + 1) * self.n_s]

    def _join(self, parts: list[Array]) -> Array:
        """The layers' states side by side: L arrays (..., n_s) -> (..., L*n_s)."""
        return parts[0] if self.layers == 1 else backend.xp_of(parts[0]).concatenate(parts, -1)

    # ----- whole windows (training, batched scoring)

    def _forward(
        self, x: Array, S0: Array, keep: Array | None = None, dropout: float = 0.0, rng=None
    ) -> list[_Run]:
        """Every layer's forward pass over a window, bottom first: x (T, B) ids or
        (T, B, n_in), S0 (B, L*n_s). With ``dropout`` p, each layer's input representation
        is dropped with a mask drawn from ``rng`` (layer 1's first, then upwards)."""
        T, B = x.shape[:2]
        xp = self.xp
        runs, X = [], self._here(x)
        S0, keep = self._here(S0), self._here(keep)
        for l in range(self.layers):
            p_l = self.layer_params(l)
            layer = self.inputs if l == 0 else self.upper
            mask = None
            if dropout:
                shape = (T, B, layer.feature_width(p_l))
                mask = dropout_mask(rng, shape, dropout, self.dtype, xp)
            D, in_cache = layer.drive(p_l, X, mask)  # (T, B, G*H)
            S, cache = core.forward(self.cell, p_l, D, self._layer_state(S0, l), keep)
            runs.append(_Run(X, S, cache, in_cache))
            X = self.cell.hidden(S[1:])  # (T, B, H): the input of the layer above
        return runs

    def states(self, x: Array, S0: Array, keep: Array | None = None) -> Array:
        """States after each input: x (T, B) ids or (T, B, n_in), S0 (B, L*n_s) ->
        S (T+1, B, L*n_s), S[0] = S0."""
        return self._join([run.S for run in self._forward(x, S0, keep)])

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
        S0 : (B, L*n_s) state carried in (not backpropagated into).
        truncate : BPTT horizon K within the window, None for full (see lm.core); with
            stacked layers it applies within each layer.
        keep : optional (T, B, 1) reset mask (0 zeroes the state entering that step, in every
            layer).
        dropout : probability p of zeroing each unit of the input representation, of the
            hidden states fed from each layer to the next, and of the states fed to the head
            (non-recurrent dropout, as Zaremba et al.; survivors are scaled by 1/(1-p)).
            Masks are drawn from ``rng``.

        Returns
        -------
        loss_sum : float, the head's loss summed over its positions (T*B, or B); the
            gradients are of the mean, loss_sum / positions.
        grads : dict with the same keys as ``params``, arrays of the same shapes; with a head
            whose ``sparse_grads`` is true (the class head) the vocabulary-sized ones are
            ``lm.sparse`` gradients (Rows for U or E, Cols for V and c) of that shape.
        s_last : (B, L*n_s) the final state, to carry into the next window.
        """
        H = self.hidden
        T, B = x.shape[:2]
        x, y = self._here(x), self._here(y)
        runs = self._forward(x, S0, keep, dropout, rng)
        S = runs[-1].S  # the top layer's states
        last = self.head.reads == "last"
        S_out = self.cell.hidden(S[-1] if last else S[1:]).reshape(-1, H)  # (N, H)
        out_mask = None
        if dropout:
            out_mask = dropout_mask(rng, S_out.shape, dropout, self.dtype, self.xp)
            S_out = S_out * out_mask
        targets = y if last else y.reshape(-1)
        loss_sum, dH, grads = self.head.loss(
            self.head_params(), S_out, targets, scale=1.0 / len(S_out)
        )
        if out_mask is not None:
            dH *= out_mask
        dS = self._state_grad(dH, T, B, last)
        for l in range(self.layers - 1, -1, -1):  # top down: each layer's dX feeds the next
            run, p_l = runs[l], self.layer_params(l)
            dD, cell_grads, _ = core.backward(self.cell, p_l, dS, run.S, run.cache, truncate)
            if l == 0:
                # a head with sparse gradients (the class head) takes the input rows sparse too
                in_grads, _ = self.inputs.backward(
                    p_l, x, run.in_cache, dD, sparse=self.head.sparse_grads
                )
            else:
                in_grads, dX = self.upper.backward(p_l, run.X, run.in_cache, dD)  # (T, B, H)
                dS = self._state_grad(dX.reshape(-1, H), T, B, False)
            grads.update(self._named(l, cell_grads))
            grads.update(self._named(l, in_grads))
        if self.tie:
            grads["E"] = sparse.add_transposed(grads["E"], grads.pop("V"))
        if self.layers == 1:
            return loss_sum, grads, S[-1].copy()
        return loss_sum, grads, self._join([run.S[-1] for run in runs])

    def _named(self, l: int, grads: dict) -> dict:
        """Layer l's gradients under the names of ``params`` (W -> W2 for l = 1)."""
        if l == 0:
            return grads
        return {self._names[l][k]: g for k, g in grads.items()}

    def _state_grad(self, dH: Array, T: int, B: int, last: bool) -> Array:
        """A gradient at one layer's hidden part as (T, B, n_s): dH (N, H), N = T*B, or
        N = B for the last state only."""
        n_s = self.n_s
        if not last and n_s == self.hidden:
            return dH.reshape(T, B, n_s)
        dS = backend.xp_of(dH).zeros((T, B, n_s), dtype=dH.dtype)
        target = self.cell.hidden(dS[-1:] if last else dS)  # a view
        target[...] = dH.reshape(target.shape)
        return dS

    def target_logprobs(self, x: Array, y: Array, S0: Array, keep: Array | None = None):
        """ln p(y[t] | history) at every position: x, y (T, B) ->
        ((T, B) float64 on the host, S (T+1, B, L*n_s) where the weights are)."""
        S = self.states(x, S0, keep)
        lp = self.head_logprobs(self.hidden_of(S[1:]).reshape(-1, self.hidden), y.reshape(-1))
        return lp.reshape(x.shape), S

    def head_logprobs(self, hidden: Array, y: Array) -> Array:
        """ln p(y_i | h_i) for N hidden rows (N, H) and targets (N,): (N,) float64 on the
        host."""
        lp = self.head.target_logprobs(self.head_params(), self._here(hidden), self._here(y))
        return backend.to_host(lp)

    def predict(self, x: Array, S0: Array | None = None) -> Array:
        """The linear head's output on the last state: x (T, B, n_in) -> (B, n_out)."""
        S0 = self.zero_state(x.shape[1]) if S0 is None else S0
        out = self.head.predict(self.params, self.hidden_of(self.states(x, S0)[-1]))
        return backend.to_host(out)

    # ----- one step at a time (incremental scoring, generation)

    def step(self, ids: Array, s: Array) -> Array:
        """Feed one word per stream: ids (B,), s (B, L*n_s) -> next state (B, L*n_s)."""
        X, parts, s = self._here(ids), [], self._here(s)
        for l in range(self.layers):
            p_l = self.layer_params(l)
            d, _ = (self.inputs if l == 0 else self.upper).drive(p_l, X)
            parts.append(core.step(self.cell, p_l, d, self._layer_state(s, l)))
            X = self.cell.hidden(parts[-1])
        return self._join(parts)

    def next_logprobs(self, s: Array) -> Array:
        """ln p(next word | state): s (B, L*n_s) -> (B, n_vocab) on the host, each row a
        log-distribution."""
        lp = self.head.next_logprobs(self.head_params(), self.hidden_of(self._here(s)))
        return backend.to_host(lp)


class _Run(NamedTuple):
    """One layer's forward pass over a window: its input X ((T, B) ids or (T, B, n_in) for
    layer 1, (T, B, H) the hidden states of the layer below otherwise), states S
    (T+1, B, n_s), and the caches of the cell and of the layer's input projection."""

    X: Array
    S: Array
    cache: dict
    in_cache: tuple
