"""Our ReformerLM training step written in PyTorch, for the train bench's PyTorch peer.

The same model as reformer/model.ts for one RunConfig (written by us from that file and
docs/attention.md, not a port of another implementation):

  ShiftRight → Embedding → Dropout → axial positions → Dup
    → n × Reversible(F = LayerNorm → attention → Dropout, G = LayerNorm → chunked FF → Dropout)
    → Concatenate → LayerNorm(2d) → Dense(vocab) → weighted cross-entropy

with Y1 = X1 + F(X2), Y2 = X2 + G(Y1). Attention cycles over the config's kinds: LSH (shared QK,
buckets recorded in the forward pass and reused when F is replayed), local (chunks of c seeing
themselves and one chunk back, keys scaled by 1/√d) or full (causal, scaled). The backward pass
is the memory-saving one our compiler derives: it keeps only the stack's outputs, rebuilds each
block's inputs from its outputs (G replayed and differentiated before F), and runs G chunk by
chunk along the sequence. Dropout masks are drawn from a generator seeded by (step, site), so a
replay sees the forward pass's masks. A step is: batch, forward, backward, clipping by global
norm, the warm-up + rsqrt learning rate and the optimiser update (Adam, or Adafactor with
runtime/optim/adafactor.ts's defaults).
"""
import math

import torch
import torch.nn.functional as F

from lsh_attention_torch import lsh_attend_sorted, lsh_sort

MASK_FORBIDDEN = 1e9


class Dropouts:
    """Replayable dropout: each call site gets the mask of (step, site)."""

    def __init__(self, rate):
        self.rate = rate
        self.step = 0

    def __call__(self, x, site):
        if self.rate == 0:
            return x
        g = torch.Generator().manual_seed(hash((self.step, site)) & 0x7FFFFFFF)
        keep = torch.rand(x.shape, generator=g) >= self.rate
        return torch.where(keep, x / (1 - self.rate), torch.zeros((), dtype=x.dtype))


def glorot(fan_in, fan_out):
    a = math.sqrt(6 / (fan_in + fan_out))
    return torch.empty(fan_in, fan_out).uniform_(-a, a)


def split_heads(x, w, h):
    B, L, _ = x.shape
    return (x @ w).view(B, L, h, -1).transpose(1, 2)


def merge_heads(y, wo):
    B, h, L, d = y.shape
    return y.transpose(1, 2).reshape(B, L, h * d) @ wo


def local_attend(q, k, v, chunk):
    """[B, h, L, d]: each chunk attends causally to itself and the chunk before (none before chunk 0)."""
    B, h, L, d = q.shape
    n = L // chunk
    qc = q.view(B, h, n, chunk, d)
    kc = (k / math.sqrt(d)).view(B, h, n, chunk, d)
    vc = v.view(B, h, n, chunk, d)
    back = lambda t: torch.cat([t, torch.roll(t, 1, dims=2)], dim=3)
    pos = torch.arange(L).view(n, chunk)
    kpos = torch.cat([pos, torch.roll(pos, 1, dims=0)], dim=1)
    blocked = (kpos.unsqueeze(1) > pos.unsqueeze(2)).clone()  # [n, c, 2c]: the future, and chunk 0's wrap
    blocked[0, :, chunk:] = True
    logits = torch.einsum("bhncd,bhnwd->bhncw", qc, back(kc)) - MASK_FORBIDDEN * blocked.to(q.dtype)
    return torch.einsum("bhncw,bhnwd->bhncd", torch.softmax(logits, dim=-1), back(vc)).reshape(B, h, L, d)


def full_attend(q, k, v):
    L, d = q.shape[2], q.shape[3]
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    logits = logits - MASK_FORBIDDEN * torch.ones(L, L).triu(1)
    return torch.softmax(logits, dim=-1) @ v


class ReformerLM:
    def __init__(self, model, generator):
        self.m = model
        if model["architecture"] != "reformer":
            raise ValueError(f"the torch peer builds the 'reformer' architecture only, not '{model['architecture']}'")
        if model.get("attentionDropout", 0) > 0 or model.get("sharedQK", False):
            raise ValueError("the torch peer has no attention dropout and no shared-QK full attention")
        d, h, dh, dff, V = model["dModel"], model["nHeads"], model["dHead"], model["dFF"], model["vocabSize"]
        (n1, n2), (e1, e2) = model["axialShape"], model["axialDims"]
        inner = h * dh
        self.drop = Dropouts(model["dropout"])
        self.sorts = {}
        p = {"embed": torch.randn(V, d), "e1": torch.randn(n1, e1), "e2": torch.randn(n2, e2)}
        for i in range(model["nLayers"]):
            names = ["qk", "v"] if self.kind(i) == "lsh" else ["q", "k", "v"]
            for n in names:
                p[f"{i}.w{n}"] = glorot(d, inner)
            p[f"{i}.wo"] = glorot(inner, d)
            for ln in ("ln_f", "ln_g"):
                p[f"{i}.{ln}.scale"], p[f"{i}.{ln}.bias"] = torch.ones(d), torch.zeros(d)
            p[f"{i}.ff1.w"], p[f"{i}.ff1.b"] = glorot(d, dff), torch.randn(dff) * 1e-6
            p[f"{i}.ff2.w"], p[f"{i}.ff2.b"] = glorot(dff, d), torch.randn(d) * 1e-6
        p["ln.scale"], p["ln.bias"] = torch.ones(2 * d), torch.zeros(2 * d)
        p["out.w"], p["out.b"] = glorot(2 * d, V), torch.randn(V) * 1e-6
        self.p = {k: t.requires_grad_() for k, t in p.items()}
        self.generator = generator

    def kind(self, i):
        kinds = self.m["attention"]
        return kinds[i % len(kinds)]

    def layer_norm(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.p[f"{name}.scale"], self.p[f"{name}.bias"], self.m.get("layerNormEpsilon", 1e-6))

    def f(self, i, x):
        """F of block i: LayerNorm → attention → Dropout."""
        m, p, h = self.m, self.p, self.m["nHeads"]
        x = self.layer_norm(x, f"{i}.ln_f")
        kind = self.kind(i)
        if kind == "lsh":
            qk, v = split_heads(x, p[f"{i}.wqk"], h), split_heads(x, p[f"{i}.wv"], h)
            if i not in self.sorts:  # recorded in the forward pass, reused by the replay
                nb = m.get("nBuckets") or 2 * x.shape[1] // m["chunkLen"]
                self.sorts[i] = lsh_sort(qk.detach(), m["nHashes"], m["chunkLen"], self.generator, nb, [nb])
            y = lsh_attend_sorted(qk, v, *self.sorts[i], m["nHashes"], m["chunkLen"])
        else:
            q, k, v = (split_heads(x, p[f"{i}.w{n}"], h) for n in ("q", "k", "v"))
            y = local_attend(q, k, v, m.get("localChunkLen") or m["chunkLen"]) if kind == "local" else full_attend(q, k, v)
        return self.drop(merge_heads(y, p[f"{i}.wo"]), (i, "f"))

    def g_chunk(self, i, x, c):
        """G of block i on sequence chunk c: LayerNorm → Dense → activation → Dropout → Dense → Dropout."""
        p = self.p
        x = self.layer_norm(x, f"{i}.ln_g")
        x = x @ p[f"{i}.ff1.w"] + p[f"{i}.ff1.b"]
        x = torch.relu(x) if self.m["ffActivation"] == "relu" else F.gelu(x, approximate="tanh")
        x = self.drop(x, (i, "ff", c))
        return self.drop(x @ p[f"{i}.ff2.w"] + p[f"{i}.ff2.b"], (i, "g", c))

    def g_chunks(self, L):
        size = self.m["ffChunkLen"]
        size = size if 0 < size < L else L
        return [(c, slice(s, s + size)) for c, s in enumerate(range(0, L, size))]

    def g(self, i, x):
        return torch.cat([self.g_chunk(i, x[:, s], c) for c, s in self.g_chunks(x.shape[1])], dim=1)

    def embed(self, tokens):
        m, p = self.m, self.p
        shifted = F.pad(tokens[:, :-1], (1, 0), value=0)
        x = self.drop(p["embed"][shifted], "embed")
        (n1, n2), (e1, e2) = m["axialShape"], m["axialDims"]
        table = torch.cat([p["e1"].view(n1, 1, e1).expand(n1, n2, e1), p["e2"].view(1, n2, e2).expand(n1, n2, e2)], dim=-1)
        return x + table.reshape(n1 * n2, e1 + e2)

    def loss(self, tokens, weights):
        self.sorts = {}
        x = self.embed(tokens)
        y1, y2 = ReversibleStack.apply(self, x, x)
        z = self.layer_norm(torch.cat([y1, y2], dim=-1), "ln")
        logits = z @ self.p["out.w"] + self.p["out.b"]
        nll = -torch.gather(torch.log_softmax(logits, -1), -1, tokens.unsqueeze(-1)).squeeze(-1)
        return (nll * weights).sum() / torch.clamp(weights.sum(), min=1e-9)


class ReversibleStack(torch.autograd.Function):
    """The reversible blocks: forward keeps only the outputs; backward rebuilds each block's
    inputs from its outputs and accumulates parameter gradients into `.grad` as it goes."""

    @staticmethod
    def forward(ctx, model, x1, x2):
        with torch.no_grad():
            for i in range(model.m["nLayers"]):
                x1 = x1 + model.f(i, x2)
                x2 = x2 + model.g(i, x1)
        ctx.model = model
        ctx.save_for_backward(x1, x2)
        return x1, x2

    @staticmethod
    def backward(ctx, dy1, dy2):
        model = ctx.model
        y1, y2 = ctx.saved_tensors
        for i in reversed(range(model.m["nLayers"])):
            # G first, chunk by chunk: x2 = y2 − G(y1), dy1 += (∂G/∂y1)ᵀ dy2
            x2_parts, dy1_parts = [], []
            for c, s in model.g_chunks(y1.shape[1]):
                with torch.enable_grad():
                    y1c = y1[:, s].detach().requires_grad_()
                    gc = model.g_chunk(i, y1c, c)
                    gc.backward(dy2[:, s])
                x2_parts.append(y2[:, s] - gc.detach())
                dy1_parts.append(dy1[:, s] + y1c.grad)
            x2, dy1 = torch.cat(x2_parts, dim=1), torch.cat(dy1_parts, dim=1)
            # then F: x1 = y1 − F(x2), dx2 = dy2 + (∂F/∂x2)ᵀ dy1
            with torch.enable_grad():
                x2 = x2.detach().requires_grad_()
                f = model.f(i, x2)
                f.backward(dy1)
            y1, y2 = y1 - f.detach(), x2.detach()
            dy2 = dy2 + x2.grad
        return None, dy1, dy2


class Adafactor:
    """runtime/optim/adafactor.ts with its defaults: factored over the last two axes, β2_t =
    1 − t^−0.8, update clipping at RMS 1, parameter-scale steps (ε2 1e-3), weight decay 1e-5."""

    def __init__(self, params):
        self.params = params
        self.t = 0
        self.slots = [(p.new_zeros(p.shape[:-1]), p.new_zeros(p.shape[:-2] + p.shape[-1:])) if p.dim() >= 2 else p.new_zeros(p.shape) for p in params]

    @torch.no_grad()
    def step(self, lr):
        self.t += 1
        beta2 = 1 - self.t ** -0.8
        eps1 = 1e-30
        rms = lambda t: t.pow(2).mean().sqrt()
        for p, slot in zip(self.params, self.slots):
            g2 = p.grad.pow(2)
            if p.dim() >= 2:
                r, c = slot
                r.mul_(beta2).add_(g2.mean(-1), alpha=1 - beta2)
                c.mul_(beta2).add_(g2.mean(-2), alpha=1 - beta2)
                scale_r = (r.mean(-1, keepdim=True) / (r + eps1)).sqrt()
                y = p.grad * scale_r.unsqueeze(-1) * (c + eps1).rsqrt().unsqueeze(-2)
            else:
                slot.mul_(beta2).add_(g2, alpha=1 - beta2)
                y = p.grad * (slot + eps1).rsqrt()
            y = y / max(1.0, float(rms(y)))
            p.mul_(1 - 1e-5).sub_(lr * max(1e-3, float(rms(p))) * y)


def duplication_batch(batch, L, V, generator):
    """`0 w 0 w` with the loss on the second half (the synthetic task our suite trains on)."""
    half = L // 2
    w = torch.randint(1, V, (batch, half - 1), generator=generator)
    zero = torch.zeros(batch, 1, dtype=torch.long)
    tokens = torch.cat([zero, w, zero, w], dim=1)
    tokens = F.pad(tokens, (0, L - tokens.shape[1]))
    weights = torch.zeros(batch, L)
    weights[:, half + 1 : 2 * half] = 1
    return tokens, weights


def train_cells(req, runs, timed):
    out = []
    for cell in req["configs"]:
        model, train = cell["model"], cell["train"]
        generator = torch.Generator().manual_seed(1)
        lm = ReformerLM(model, generator)
        params = list(lm.p.values())
        if train["optimizer"] == "adam":
            optimizer = torch.optim.Adam(params, lr=train["learningRate"], betas=(0.9, 0.999), eps=1e-8)
            update = lambda lr: ([g.update(lr=lr) for g in optimizer.param_groups], optimizer.step())
        else:
            optimizer = Adafactor(params)
            update = optimizer.step
        warmup = train["warmupSteps"]
        state = {"step": 0}

        def step():
            t = state["step"] = state["step"] + 1
            lm.drop.step = t
            tokens, weights = duplication_batch(train["batchSize"], model["seqLen"], model["vocabSize"], generator)
            for q in params:
                q.grad = None
            loss = lm.loss(tokens, weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, train["gradClip"])
            update(train["learningRate"] * min(1, t / warmup) / math.sqrt(max(t, warmup)))
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"the torch peer's training diverged at step {t}")

        out.append({
            "op": cell["name"],
            "tokensPerStep": train["batchSize"] * model["seqLen"],
            "parameters": sum(q.numel() for q in params),
            **timed(step, runs),
        })
    return out
