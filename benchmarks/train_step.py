"""Train-step throughput of the paper's grokking transformer (p = 113, 30% train = 3,830
pairs, full batch, AdamW), ncjax's jitted step vs a PyTorch CPU step of the same model as
the usual reference code writes it (every position through attention and MLP), and the
cost of ncjax's on-device metrics call relative to a train step.

  pip install torch==2.13.0   # benchmark only
  python -m benchmarks.train_step
"""

import numpy as np
import torch

from benchmarks.timing import best_of, table
from ncjax.models import make_model
from ncjax.train import create_states, make_metrics_fn, make_train_step, seed_splits
from ncjax.train.config import base_config

P, D_MODEL, HEADS, MLP = 113, 128, 4, 512


class TorchTransformer(torch.nn.Module):
  """One-layer transformer, readout at the last position (as in Nanda et al.'s code)."""

  def __init__(self):
    super().__init__()
    self.embed = torch.nn.Embedding(P + 1, D_MODEL)
    self.pos = torch.nn.Parameter(0.02 * torch.randn(3, D_MODEL))
    self.attn = torch.nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
    self.mlp = torch.nn.Sequential(torch.nn.Linear(D_MODEL, MLP), torch.nn.ReLU(),
                                   torch.nn.Linear(MLP, D_MODEL))
    self.head = torch.nn.Linear(D_MODEL, P)

  def forward(self, tokens):
    x = self.embed(tokens) + self.pos
    x = x + self.attn(x, x, x, need_weights=False)[0]
    x = x + self.mlp(x)
    return self.head(x[:, -1])


def main():
  torch.set_num_threads(2)
  config = base_config()
  config.modulus, config.train_fraction, config.model = P, 0.3, "transformer"
  config.model_kwargs = {"d_model": D_MODEL, "num_heads": HEADS, "mlp_dim": MLP}
  train, test = seed_splits(config)  # one seed: (1, n, ...)
  model = make_model(config)
  state = create_states(config, model)
  step = make_train_step(batch_size=None)
  metrics = make_metrics_fn(model.apply, P, sample_size=512)
  seeds = np.zeros(1, np.int32)

  def run_steps(k):
    nonlocal state
    for _ in range(k):
      state, loss = step(state, train, seeds)
    return loss

  t_ours = best_of(run_steps, 20, repeats=3) / 20
  t_metrics = best_of(lambda: metrics(state.params, train, test), repeats=3)

  net = TorchTransformer()
  opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
  x, y = (torch.from_numpy(a[0].astype(np.int64)) for a in train)

  def torch_steps(k):
    for _ in range(k):
      opt.zero_grad()
      loss = torch.nn.functional.cross_entropy(net(x), y)
      loss.backward()
      opt.step()

  t_torch = best_of(torch_steps, 10, repeats=3) / 10
  print(f"one-layer transformer, p={P}, {train.labels.shape[1]} pairs full batch, AdamW; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads")
  print(table(["ncjax step ms", "torch step ms", "torch / ncjax", "metrics call ms",
               "metrics every 100 steps"],
              [[f"{t_ours * 1e3:.1f}", f"{t_torch * 1e3:.1f}", f"{t_torch / t_ours:.2f}x",
                f"{t_metrics * 1e3:.0f}", f"{t_metrics / (100 * t_ours + t_metrics):.1%}"]]))


if __name__ == "__main__":
  main()
