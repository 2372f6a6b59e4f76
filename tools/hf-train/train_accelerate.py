#!/usr/bin/env python3
"""
Continues training a Reformer exported by `reformer export --format hf` with HF transformers and
accelerate (DDP over every GPU accelerate is configured for), on a byte-level text file, and
writes the result back as config.json + model.safetensors for `reformer import`.

    accelerate launch --multi_gpu --num_processes 8 tools/hf-train/train_accelerate.py \
        --model hf-model --data corpus.txt --steps 20000 --batch-size 8 --out hf-trained

Token convention (ours, and HF's reformer-enwik8): id 0 = pad, 1 = EOS, byte b = b + 2. Each
example is [0] + L-1 bytes, so with labels = input_ids (HF shifts inside the loss) the model
learns exactly what our ReformerLM (ShiftRight with the pad id 0) learns.
"""
import argparse
import json
import os
import sys

import torch
from accelerate import Accelerator
from transformers import ReformerConfig, ReformerModelWithLMHead

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf-fixture"))
from make_fixture import read_safetensors, write_safetensors  # noqa: E402  (our pickle-free safetensors reader/writer)


def load_pretrained(path):
    """from_pretrained; transformers older than safetensors support get the tensors from our reader."""
    try:
        return ReformerModelWithLMHead.from_pretrained(path)
    except OSError:
        state, _ = read_safetensors(os.path.join(path, "model.safetensors"))
        return ReformerModelWithLMHead.from_pretrained(None, config=ReformerConfig.from_pretrained(path), state_dict=state)


def batches(data, seq_len, batch_size, seed):
    """Endless random windows of seq_len - 1 bytes, each preceded by the pad id 0."""
    g = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(data) - seq_len, (batch_size,), generator=g)
        x = torch.stack([data[s : s + seq_len - 1] for s in starts.tolist()])
        yield torch.cat([torch.zeros(batch_size, 1, dtype=torch.long), x], dim=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF directory from `reformer export --format hf`")
    p.add_argument("--data", required=True, help="a text file (read as bytes)")
    p.add_argument("--out", required=True, help="directory for the trained config.json + model.safetensors")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    a = p.parse_args()

    accelerator = Accelerator()
    model = load_pretrained(a.model)
    if model.config.vocab_size != 258:
        sys.exit(f"--model has vocab_size {model.config.vocab_size}; this script trains byte-level models (258)")
    L = model.config.max_position_embeddings
    with open(a.data, "rb") as f:
        data = torch.tensor(list(f.read()), dtype=torch.long) + 2
    if len(data) < 2 * L:
        sys.exit(f"--data has {len(data)} bytes; it needs at least {2 * L}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()  # HF's reversible backward requires train mode
    stream = batches(data, L, a.batch_size, a.seed + accelerator.process_index)
    for step in range(1, a.steps + 1):
        x = next(stream).to(accelerator.device)
        loss = model(input_ids=x, labels=x).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        if step % a.log_every == 0 or step == a.steps:
            mean = accelerator.gather(loss.detach().reshape(1)).mean().item()
            accelerator.print(json.dumps({"step": step, "loss": mean, "bits_per_byte": mean / 0.6931471805599453}))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(model)
        os.makedirs(a.out, exist_ok=True)
        trained.config.save_pretrained(a.out)
        state = {k: v.detach().float().cpu() for k, v in trained.state_dict().items() if "mask_value" not in k}
        write_safetensors(os.path.join(a.out, "model.safetensors"), state, {"format": "pt"})
        accelerator.print(f"wrote {a.out}: import it with  npx reformer import {a.out} --out RUN_DIR")


if __name__ == "__main__":
    main()
