"""CIFAR-100 with a WRN-28-8: the first paper's supervised setting (Song et al. 2024).

  tfds build cifar100 --data_dir ~/tensorflow_datasets      # once, with internet
  ncjax train --config experiments/cifar100_wrn.py --workdir runs/cifar100 \
      --config.data.data_dir=$HOME/tensorflow_datasets

SGD with Nesterov momentum, lr 0.03 with cosine decay, weight decay 5e-4, batch 64,
200 epochs, 4-pixel padded random crop and horizontal flip; metrics over the whole
train and test splits once an epoch. The paper reports 80.77% test accuracy. Not run
here (no accelerator, no download); the wall time of one WRN-28-2 step at batch 64 on
2 CPU cores is in docs/classification.md.
"""

from common import cifar_wrn_config


def get_config():
  return cifar_wrn_config("cifar100", width=8)
