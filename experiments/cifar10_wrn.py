"""CIFAR-10 with a WRN-28-2: the first paper's supervised setting (Song et al. 2024).

  tfds build cifar10 --data_dir ~/tensorflow_datasets      # once, with internet
  ncjax train --config experiments/cifar10_wrn.py --workdir runs/cifar10 \
      --config.data.data_dir=$HOME/tensorflow_datasets

SGD with Nesterov momentum, lr 0.03 with cosine decay, weight decay 5e-4, batch 64,
200 epochs, 4-pixel padded random crop and horizontal flip; metrics over the whole
train and test splits once an epoch. The paper reports 95.35% test accuracy. Not run
here (no accelerator, no download); the wall time of one WRN-28-2 step at batch 64 on
2 CPU cores is in docs/classification.md.
"""

from common import cifar_wrn_config


def get_config():
  return cifar_wrn_config("cifar10", width=2)
