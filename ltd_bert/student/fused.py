"""The student's inference path in PyTorch: both LSTM directions in one loop, bf16 matrix
products where the CPU multiplies bf16 natively, int8 ones elsewhere.

`nn.LSTM` over a packed batch runs each direction separately and pays PyTorch's per-step
overhead twice; `FusedBiLSTM` runs them together, one (2, n, H) × (2, H, 4H) product per
step, by feeding the backward direction each sentence reversed within its own length (so at
step t both directions hold the same rows: those longer than t, sentences sorted longest
first). The first layer's input projection is folded into a per-character table (exact:
embedding × W_ih + biases), the gates are reordered (i, f, o, g) so that one `sigmoid_` and
one `tanh_` give all four (fewer elementwise passes per step than one `tanh` of halved
rows: ~3 % faster), and the last layer is pooled as it runs.

Precision: "fp32" gives `nn.LSTM`'s vectors to ~1e-6; "bf16" rounds the state to bfloat16
for the recurrent product only (gate sums, cell and pooling stay float32): on a CPU with
AMX (Intel Sapphire Rapids and later) the loop is ~2× faster per thread, and vectors
keep a cosine of ~0.999999 to fp32 (docs/pipeline.md). "int8" multiplies the state by int8
recurrent weights (one scale per gate unit; the state quantised each step, FBGEMM's dynamic
linear with 7-bit activations, which AVX2 sums without saturating): vectors keep a cosine
of ~0.99997 to fp32, and an AVX2 CPU encodes ~1.13× faster (docs/speed.md). "auto" picks
bf16 where AMX is there, else int8 (x86), else fp32; and fp32 for a small LSTM, whose
products are too small to gain from either (`AUTO_MIN_HIDDEN`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ltd_bert.common.cpu import PrecisionError, auto_precision, forced_precision, require_bf16
from ltd_bert.runtime.light import first_layer_table, gate_weights, reversed_within

PRECISIONS = ("auto", "fp32", "bf16", "int8")


#: the smallest LSTM (units per direction) whose loop "auto" runs in bf16 / int8: below
#: them fp32 is faster, the products being too small to pay for the conversions (one
#: thread, 4,000 corpus lines, `experiments/precision_grid.py`: bf16 on AMX 0.96× fp32 at 64
#: units, 1.20× at 128; int8 as AVX2 0.78× at 64, 0.91× at 128, 0.94× at 192, 1.03× at 256)
AUTO_MIN_HIDDEN = {"bf16": 128, "int8": 256}


def resolve_precision(precision: str, hidden: int | None = None) -> str:
    """The products a fused loop runs: `precision` as asked (bf16 only where native), or for
    "auto" bf16 where the CPU multiplies bf16 natively, else int8 where PyTorch has FBGEMM
    (x86), else fp32; LTD_PRECISION=fp32 or bf16 decides "auto" instead. With `hidden` (the
    LSTM's units per direction), "auto" keeps fp32 for a loop below `AUTO_MIN_HIDDEN`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "bf16":
        require_bf16()
    if precision == "int8" and not has_int8():
        raise PrecisionError("--precision int8: this PyTorch has no FBGEMM (x86 CPUs only)")
    if precision != "auto":
        return precision
    forced = forced_precision()
    chosen = auto_precision("cpu")
    if chosen == "fp32" and not forced and has_int8():
        chosen = "int8"
    if not forced and hidden is not None and hidden < AUTO_MIN_HIDDEN.get(chosen, 0):
        return "fp32"
    return chosen


def has_int8() -> bool:
    """Whether PyTorch multiplies int8 through FBGEMM here (x86 builds)."""
    return "fbgemm" in torch.backends.quantized.supported_engines


def int8_packed(w: np.ndarray):
    """A recurrent weight (H, 4H) as FBGEMM's packed int8 weight for `linear_dynamic`: int8
    with one scale per output (gate unit), the activations quantised per step."""
    wt = torch.from_numpy(np.ascontiguousarray(w.T))  # (4H, H): one row per output
    scale = (wt.abs().amax(1) / 127).clamp(min=1e-12).double()
    zero = torch.zeros(len(wt), dtype=torch.long)
    with warnings.catch_warnings():  # quantised tensors are deprecated (still in 2.13)
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(wt, scale, zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None)


class FusedBiLSTM:
    """Inference weights of a `BiLSTMStudent`, prepared once: `forward(ids, lengths,
    weights)` gives the model's sentence vectors (B, D) as numpy."""

    def __init__(self, model, precision: str = "auto"):
        self.precision = resolve_precision(precision, model.config.hidden_size)
        self.mm_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        c = model.config
        self.H, self.layers = c.hidden_size, c.num_layers
        with torch.no_grad():
            tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
            ih, bias, hh = gate_weights(tensors, c, sigmoid_first=True)  # (i, f, o, g)
            self.ih = [[torch.from_numpy(w) for w in layer] for layer in ih]
            self.bias = [[torch.from_numpy(b) for b in layer] for layer in bias]
            # per layer, both directions' recurrent weights: stacked (2, H, 4H), or for int8
            # one packed weight per direction
            self.hh = [
                [int8_packed(w) for w in layer]
                if self.precision == "int8"
                else torch.from_numpy(np.stack(layer)).to(self.mm_dtype)
                for layer in hh
            ]
            e = tensors["embedding.weight"]
            # both directions' first-layer gate inputs per character: rows [0, V) forward,
            # [V, 2V) backward
            table = np.concatenate(first_layer_table(e, ih, bias))
            self.table = torch.from_numpy(table).to(self.mm_dtype)
            self.vocab_size = e.shape[0]
            self.proj_w = None if model.proj is None else model.proj.weight.T.contiguous()
            self.proj_b = None if model.proj is None else model.proj.bias.clone()

    @torch.inference_mode()
    def forward(self, ids: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> np.ndarray:
        order = np.argsort(-lengths, kind="stable")
        if (order != np.arange(len(order))).any():  # the loop wants the longest first
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            return self.forward(ids[order], lengths[order], weights[order])[back]
        V = self.vocab_size
        x2 = None  # a later layer's gate inputs (2, B, T, 4H)
        for layer in range(self.layers):
            last = layer == self.layers - 1
            if layer == 0:
                # (T, 2, B): each step's rows contiguous for one index_select (~8 % faster
                # than indexing with a (2, n) slice)
                both = np.stack([ids, reversed_within(ids, lengths) + V]).transpose(2, 0, 1)
                both = torch.from_numpy(np.ascontiguousarray(both))
                # one buffer for every step's gate inputs (used up within the step):
                # gathering into it is ~1.6x faster than into a fresh tensor per step
                buf = torch.empty(2 * len(lengths), self.table.shape[1], dtype=self.mm_dtype)

                def gates(t, n, both=both, buf=buf):
                    out = buf[: 2 * n]
                    torch.index_select(self.table, 0, both[t, :, :n].reshape(-1), out=out)
                    return out.view(2, n, -1)

            else:
                gates = lambda t, n, x2=x2: x2[:, :n, t]  # noqa: E731
            if last:
                w2 = np.stack([weights, reversed_within(weights, lengths)]).astype(np.float32)
                out = self._recur(gates, lengths, layer, torch.from_numpy(w2))
                pooled = torch.cat([out[0], out[1]], 1)  # (B, 2H)
                if self.proj_w is None:
                    return pooled.numpy()
                return torch.addmm(self.proj_b, pooled, self.proj_w).numpy()
            states = self._recur(gates, lengths, layer, None)  # (2, B, T, H) steps
            s = states.numpy()
            # back to positions: forward as run; backward un-reversed within each length
            x = np.concatenate([s[0], reversed_within(s[1], lengths)], -1)  # (B, T, 2H)
            xr = reversed_within(x, lengths)
            nxt = layer + 1
            xt = torch.from_numpy(x)
            x2 = torch.stack(
                [
                    xt @ self.ih[nxt][0] + self.bias[nxt][0],
                    torch.from_numpy(xr) @ self.ih[nxt][1] + self.bias[nxt][1],
                ]
            ).to(self.mm_dtype)
        raise AssertionError("unreachable")

    def _recur(self, gates, lengths: np.ndarray, layer: int, pool):
        """Both directions of one layer: their weighted sums (2, B, H) with `pool` (2, B, T),
        else every step's states (2, B, T, H) (the backward direction in its own order)."""
        hh = self.hh[layer]
        int8 = self.precision == "int8"
        B = len(lengths)
        T = int(lengths.max(initial=0))
        H = self.H
        h = torch.zeros(2, B, H, dtype=self.mm_dtype)  # kept in the products' type
        c = torch.zeros(2, B, H)
        pooled = torch.zeros(2, B, H) if pool is not None else None
        states = torch.zeros(2, B, max(T, 1), H) if pool is None else None
        running = np.searchsorted(-lengths, -np.arange(T), side="left")  # rows longer than t
        for t in range(T):
            n = int(running[t])
            # in place on the gate inputs (the step's part of the gather buffer, or a slice
            # of the layer's inputs used once): no output allocated and copied, ~5 % of the loop
            if int8:
                g = gates(t, n)
                for d in (0, 1):
                    g[d] += torch.ops.quantized.linear_dynamic(h[d, :n], hh[d], True)
            else:
                g = gates(t, n).baddbmm_(h[:, :n], hh)
            if g.dtype != torch.float32:
                g = g.float()  # gates, cell and pooling in float32
            sig = g[..., : 3 * H].sigmoid_()
            gg = g[..., 3 * H :].tanh_()
            cn = c[:, :n]
            cn.mul_(sig[..., H : 2 * H]).addcmul_(sig[..., :H], gg)  # f·c + i·g
            hn = torch.tanh(cn).mul_(sig[..., 2 * H :])  # o·tanh(c)
            h[:, :n] = hn
            if pooled is not None:
                pooled[:, :n].addcmul_(pool[:, :n, t, None], hn)
            else:
                states[:, :n, t] = hn
        return pooled if pooled is not None else states
