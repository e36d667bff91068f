"""The recurrent language model: input layer -> recurrent core -> softmax head.

    d_t = x_t U + b            (x_t: one-hot word, i.e. row U[w_t], or embedding E[w_t])
    s_t = f(d_t + s_{t-1} W)   (lm.core)
    p_t = softmax(s_t V + c)   distribution of the next word w_{t+1}

Parameter shapes (n_vocab words, E embedding size, H hidden units):
    E (n_vocab, E) [embedding input only], U (n_vocab or E, H), W (H, H), b (H,),
    V (H, n_vocab), c (n_vocab,)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lm import activations, core, heads, inputs

Array = np.ndarray


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters, saved in ``config.json``."""

    n_vocab: int
    hidden: int = 200
    input: str = "onehot"  # "onehot" or "embedding"
    embed_dim: int = 0  # used when input == "embedding"
    activation: str = "tanh"
    alpha: float = 0.01  # leaky ReLU slope

    def to_dict(self) -> dict:
        return asdict(self)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every parameter array this configuration implies."""
        n, H = self.n_vocab, self.hidden
        shapes = {"W": (H, H), "b": (H,), "V": (H, n), "c": (n,)}
        if self.input == "embedding":
            shapes.update(E=(n, self.embed_dim), U=(self.embed_dim, H))
        else:
            shapes["U"] = (n, H)
        return shapes


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict:
    """Initial weights.

    W is a random orthogonal matrix (scaled by 0.9 for tanh/ReLU-like units so that the
    recurrence neither explodes nor dies at the start; sigmoid units, whose slope is at most
    1/4, get a gain of 2). U and V are uniform in +-1/sqrt(fan_in) (one-hot rows act like an
    embedding, so they use +-0.1 as embeddings do), biases are zero.
    """
    H, n = config.hidden, config.n_vocab
    gain = 2.0 if config.activation == "sigmoid" else 0.9
    q, r = np.linalg.qr(rng.normal(size=(H, H)))
    W = gain * q * np.sign(np.diag(r))

    def uniform(shape, scale):
        return rng.uniform(-scale, scale, size=shape)

    params = {"W": W, "b": np.zeros(H), "V": uniform((H, n), 1 / np.sqrt(H)), "c": np.zeros(n)}
    if config.input == "embedding":
        params["E"] = uniform((n, config.embed_dim), 0.1)
        params["U"] = uniform((config.embed_dim, H), 1 / np.sqrt(config.embed_dim))
    else:
        params["U"] = uniform((n, H), 0.1 * np.sqrt(3))
    return {k: v.astype(dtype) for k, v in params.items()}


def _dropout_mask(rng: np.random.Generator, shape, p: float, dtype) -> Array:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p)."""
    return (rng.random(shape, dtype=np.float32) >= p).astype(dtype) / np.dtype(dtype).type(1 - p)


class RNNLM:
    """The network. ``params`` maps the names above to arrays; nothing else is stored."""

    def __init__(self, config: ModelConfig, params: dict[str, Array]):
        self.config = config
        self.params = params
        self.act = activations.get(config.activation, config.alpha)

    @classmethod
    def create(cls, config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> RNNLM:
        return cls(config, init_params(config, rng, dtype))

    @property
    def dtype(self):
        return self.params["W"].dtype

    def zero_state(self, B: int) -> Array:
        """(B, H) zeros: the state before any input."""
        return np.zeros((B, self.config.hidden), dtype=self.dtype)

    # ----- whole windows (training, batched scoring) -----

    def states(self, x: Array, S0: Array, keep: Array | None = None) -> Array:
        """States after each input: x (T, B) ids, S0 (B, H) -> S (T+1, B, H), S[0] = S0."""
        D, _ = inputs.drive(self.config.input, self.params, x)
        S, _ = core.forward(D, self.params["W"], S0, self.act, keep)
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
        """Mean cross-entropy over a window and its gradients.

        Parameters
        ----------
        x, y : (T, B) int input ids and target ids (y[t] is the word after x[t]).
        S0 : (B, H) state carried in (not backpropagated into).
        truncate : BPTT horizon K within the window, None for full (see lm.core).
        keep : optional (T, B, 1) reset mask (0 zeroes the state entering that step).
        dropout : probability p of zeroing each unit of the input representation and of the
            states fed to the softmax (non-recurrent dropout, as Zaremba et al.; survivors are
            scaled by 1/(1-p)). Masks are drawn from ``rng``.

        Returns
        -------
        loss_sum : float, sum of -ln p(y) over the T*B positions (the gradients are of the
            mean, loss_sum / (T*B)).
        grads : dict with the same keys and shapes as ``params``.
        s_last : (B, H) the final state, to carry into the next window.
        """
        p, kind = self.params, self.config.input
        T, B = x.shape
        H = self.config.hidden
        in_mask = out_mask = None
        if dropout:
            in_dim = p["E"].shape[1] if kind == "embedding" else H
            in_mask = _dropout_mask(rng, (T, B, in_dim), dropout, self.dtype)
            out_mask = _dropout_mask(rng, (T * B, H), dropout, self.dtype)
        D, cache = inputs.drive(kind, p, x, in_mask)  # (T, B, H)
        S, A = core.forward(D, p["W"], S0, self.act, keep)
        S_out = S[1:].reshape(-1, H)  # (T*B, H): every position goes through the head at once
        if out_mask is not None:
            S_out = S_out * out_mask
        loss_sum, dS, dV, dc = heads.softmax_xent(
            S_out, p["V"], p["c"], y.reshape(-1), scale=1.0 / (T * B)
        )
        if out_mask is not None:
            dS *= out_mask
        dD, dW, _ = core.backward(dS.reshape(T, B, H), S, A, p["W"], self.act, truncate, keep)
        grads, _ = inputs.drive_backward(kind, p, x, cache, dD)
        grads.update(W=dW, V=dV, c=dc)
        return loss_sum, grads, S[-1].copy()

    def target_logprobs(self, x: Array, y: Array, S0: Array, keep: Array | None = None):
        """ln p(y[t] | history) for every position: x, y (T, B) -> ((T, B) float64, S (T+1,B,H))."""
        S = self.states(x, S0, keep)
        T, B = x.shape
        H = self.config.hidden
        lp = heads.target_logprobs(
            S[1:].reshape(-1, H), self.params["V"], self.params["c"], y.reshape(-1)
        )
        return lp.reshape(T, B), S

    # ----- one step at a time (incremental scoring, generation) -----

    def step(self, ids: Array, s: Array) -> Array:
        """Feed one word per stream: ids (B,), s (B, H) -> next state (B, H)."""
        d, _ = inputs.drive(self.config.input, self.params, ids)
        return core.step(d, self.params["W"], s, self.act)

    def next_logprobs(self, s: Array) -> Array:
        """ln p(next word | state): s (B, H) -> (B, n_vocab), each row a log-distribution."""
        return heads.next_logprobs(s, self.params["V"], self.params["c"])
