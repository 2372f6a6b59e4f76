"""Our LSH self-attention layer written in PyTorch from docs/attention.md, for the attention bench's
PyTorch peer (the same computation as reformer/attention, not a port of another implementation).

One causal layer on x [B, L, d_model]: per-head shared query/key and value projections (no biases),
then for every example and head
  1. hash: rot = qk · R per bucket factor (R ~ N(0, 1)), bucket = Σ argmax(concat(rot, -rot))·stride
     plus r·nb for round r (no gradient);
  2. sort the nHashes·L token copies by bucket (stable), gather qk and v in that order;
  3. chunk into chunks of c, each seeing itself and one chunk back (wrapping across rounds);
  4. logits = q · k̂ with k̂ = k / sqrt(Σk² + 1e-6·dK); −1e9 on future keys, −1e5 on the query
     itself; weights = softmax, lse = logsumexp;
  5. unsort outputs and lse, combine rounds with softmax_r(lse_r);
then the output projection. The timed cell is forward + backward of Σ y ⊙ cotangent w.r.t. the
parameters and the input, like the TypeScript cell. Full attention is causal multi-head attention
with q/k/v/o projections, scores scaled by 1/sqrt(dK).
"""
import math

import torch


def auto_factors(nb):
    """Buckets above 64 split into two even factors near sqrt(nb) (our 'auto' bucketFactors)."""
    if nb <= 64:
        return [nb]
    best = None
    f = 2
    while f * f <= nb:
        if nb % f == 0 and f % 2 == 0 and (nb // f) % 2 == 0:
            best = f
        f += 2
    return [best, nb // best] if best else [nb]


def lsh_sort(qk, n_hashes, chunk, generator, n_buckets=None, factors=None):
    """The sort of the nHashes·L token copies by bucket: (sticker, undo), each [B, h, nHashes·L].
    `n_buckets` defaults to 2·L/chunk, `factors` to our 'auto' bucketFactors."""
    B, h, L, d = qk.shape
    nb = n_buckets or 2 * L // chunk
    factors = factors or auto_factors(nb)
    with torch.no_grad():
        bucket = torch.zeros(B, h, n_hashes, L, dtype=torch.long)
        stride = 1
        for f in factors:
            rot = torch.randn(B, h, d, n_hashes, f // 2, generator=generator)
            r = torch.einsum("bhld,bhdrf->bhrlf", qk, rot)
            bucket += torch.argmax(torch.cat([r, -r], dim=-1), dim=-1) * stride
            stride *= f
        bucket += (torch.arange(n_hashes) * nb).view(1, 1, n_hashes, 1)
        bucket = bucket.reshape(B, h, n_hashes * L)
        sticker = torch.sort(bucket, dim=-1, stable=True).indices
        undo = torch.argsort(sticker, dim=-1)
    return sticker, undo


def lsh_attend_sorted(qk, v, sticker, undo, n_hashes, chunk):
    """qk, v: [B, h, L, d] -> [B, h, L, d] (causal, one chunk back) for a given sort."""
    B, h, L, d = qk.shape
    pos = sticker % L
    n = n_hashes * L // chunk
    sqk = torch.gather(qk, 2, pos.unsqueeze(-1).expand(-1, -1, -1, d)).view(B, h, n, chunk, d)
    sv = torch.gather(v, 2, pos.unsqueeze(-1).expand(-1, -1, -1, d)).view(B, h, n, chunk, d)
    qpos = pos.view(B, h, n, chunk)
    look = lambda t: torch.cat([t, torch.roll(t, 1, dims=2)], dim=3)  # chunk i sees itself and chunk i-1
    k = look(sqk)
    k = k / torch.sqrt((k * k).sum(-1, keepdim=True) + 1e-6 * d)
    kv = look(sv)
    kpos = look(qpos)
    logits = torch.einsum("bhncd,bhnwd->bhncw", sqk, k)
    qp = qpos.unsqueeze(-1)
    kp = kpos.unsqueeze(-2)
    logits = logits - 1e9 * (kp > qp).to(logits.dtype) - 1e5 * (kp == qp).to(logits.dtype)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    out = torch.einsum("bhncw,bhnwd->bhncd", torch.exp(logits - lse), kv)
    out = out.reshape(B, h, n_hashes * L, d)
    lse = lse.reshape(B, h, n_hashes * L)
    out = torch.gather(out, 2, undo.unsqueeze(-1).expand(-1, -1, -1, d)).view(B, h, n_hashes, L, d)
    lse = torch.gather(lse, 2, undo).view(B, h, n_hashes, L, 1)
    return (out * torch.softmax(lse, dim=2)).sum(dim=2)


def lsh_attend(qk, v, n_hashes, chunk, generator):
    """qk, v: [B, h, L, d] -> [B, h, L, d]: hash, sort and attend."""
    return lsh_attend_sorted(qk, v, *lsh_sort(qk, n_hashes, chunk, generator), n_hashes, chunk)


def heads(x, w, h):
    B, L, _ = x.shape
    return (x @ w).view(B, L, h, -1).transpose(1, 2)


def merge(y):
    B, h, L, d = y.shape
    return y.transpose(1, 2).reshape(B, L, h * d)


def lsh_layer(x, p, h, n_hashes, chunk, generator):
    return merge(lsh_attend(heads(x, p["qk"], h), heads(x, p["v"], h), n_hashes, chunk, generator)) @ p["o"]


def full_layer(x, p, h):
    q, k, v = heads(x, p["q"], h), heads(x, p["k"], h), heads(x, p["v"], h)
    L = x.shape[1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    return merge(torch.softmax(scores, dim=-1) @ v) @ p["o"]


def attention_cells(req, runs, timed):
    h, dk, dm = req["nHeads"], req["dHead"], req["dModel"]
    out = []
    for cell in req["cells"]:
        L = cell["L"]
        x = torch.randn(1, L, dm, requires_grad=True)
        cot = torch.randn(1, L, dm)
        names = ["qk", "v", "o"] if cell["method"] == "lsh" else ["q", "k", "v", "o"]
        p = {n: (torch.randn(dm if n != "o" else h * dk, h * dk if n != "o" else dm) / math.sqrt(dm)).requires_grad_() for n in names}
        generator = torch.Generator().manual_seed(42)

        def step():
            y = lsh_layer(x, p, h, cell["nHashes"], cell["chunkLen"], generator) if cell["method"] == "lsh" else full_layer(x, p, h)
            grads = torch.autograd.grad((y * cot).sum(), [x, *p.values()])
            return grads

        cell_runs = runs if L <= 4096 else max(1, runs // 2)
        out.append({"op": cell["name"], "L": L, **timed(step, cell_runs)})
    return out
