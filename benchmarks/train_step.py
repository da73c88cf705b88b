"""Train-step throughput of the paper's grokking transformer (p = 113, 30% train = 3,830
pairs, full batch, AdamW), ncjax's jitted step vs a PyTorch CPU step of the same model as
the usual reference code writes it (every position through attention and MLP), and the
cost of ncjax's on-device metrics call relative to a train step. Then one SGD step of a
WRN-28-2 at batch 64 on synthetic inputs of CIFAR shape (the first paper's setting).

  pip install torch==2.13.0   # benchmark only
  python -m benchmarks.train_step
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import best_of, optional_torch, table
from experiments.common import cifar_wrn_config, overridden
from ncjax.data import Batch
from ncjax.losses import cross_entropy
from ncjax.models import make_model
from ncjax.tasks import make_task
from ncjax.train.config import base_config
from ncjax.train.meshes import batch_sharding, make_mesh
from ncjax.train.state import create_states, make_loss, make_train_step

P, D_MODEL, HEADS, MLP = 113, 128, 4, 512
torch = optional_torch()


def torch_transformer():
  """One-layer transformer, readout at the last position (as in Nanda et al.'s code)."""

  class TorchTransformer(torch.nn.Module):

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

  return TorchTransformer()


def vision_step_seconds(name: str = "wrn", batch: int = 64, image: int = 32,
                        dtype: str = "float32", **kwargs) -> float:
  """Seconds of one jitted SGD step (the CIFAR recipe of ``cifar_wrn_config``) of model
  ``name`` (BatchNorm) with ``kwargs``, computing in ``dtype``, at ``batch`` images of
  ``image`` x ``image`` x 3, 10 classes."""
  config = cifar_wrn_config("cifar10", 2)
  model = make_model(name, 10, dtype, **kwargs)
  mesh = make_mesh(overridden(config, {"mesh.data": 1}))
  state = create_states(config, model, jnp.zeros((1, image, image, 3)), mesh)
  step = make_train_step(lambda logits, features, head, b: cross_entropy(logits, b.labels), mesh)
  key = jax.random.key(0)
  data = jax.device_put(Batch(jax.random.normal(key, (1, batch, image, image, 3)),
                              jax.random.randint(key, (1, batch), 0, 10),
                              jnp.ones((1, batch), bool)), batch_sharding(mesh))

  def run(k):
    nonlocal state
    for _ in range(k):
      state, loss = step(state, data)
    return loss

  return best_of(run, 5, repeats=3) / 5


def torchvision_resnet18_step_seconds(device: str, batch: int = 512, image: int = 32,
                                      autocast: bool = False) -> float:
  """Seconds of one SGD step of torchvision's ResNet-18 with the CIFAR stem (3x3 conv, no
  max-pool) on ``device``, float32 or under ``torch.autocast`` bfloat16."""
  import torchvision

  net = torchvision.models.resnet18(num_classes=10)
  net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
  net.maxpool = torch.nn.Identity()
  net = net.to(device).to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9, nesterov=True,
                        weight_decay=5e-4)
  x = torch.randn(batch, 3, image, image, device=device).to(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (batch,), device=device)

  def run(k):
    for _ in range(k):
      opt.zero_grad(set_to_none=True)
      with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast):
        loss = torch.nn.functional.cross_entropy(net(x), y)
      loss.backward()
      opt.step()
    return loss.item()  # waits for the device

  return best_of(run, 5, repeats=3) / 5


def main():
  torch.set_num_threads(2)
  config = base_config()
  config.data.modulus, config.data.train_fraction, config.model.name = P, 0.3, "transformer"
  config.model.kwargs = {"d_model": D_MODEL, "num_heads": HEADS, "mlp_dim": MLP}
  task = make_task(config)  # one seed: (1, n, ...)
  state = create_states(config, task.model, task.example_inputs, task.mesh)
  step = make_train_step(make_loss(task.config), task.mesh)
  train = next(task.train_stream(0))  # full batch

  def run_steps(k):
    nonlocal state
    for _ in range(k):
      state, loss = step(state, train)
    return loss

  t_ours = best_of(run_steps, 20, repeats=3) / 20
  t_metrics = best_of(lambda: task.evaluate(state), repeats=3)

  net = torch_transformer()
  opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
  x, y = (torch.from_numpy(a.astype(np.int64)) for a in task.examples("train", P * P))

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
  wrn_ms = vision_step_seconds("wrn", depth=28, width=2) * 1e3
  print(f"WRN-28-2, batch 64, CIFAR-shaped inputs, SGD step: {wrn_ms:.0f} ms")


if __name__ == "__main__":
  main()
