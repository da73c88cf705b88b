"""Fashion-MNIST into the terminal phase on 2 CPU cores (offline: Debian's IDX files).

  ncjax train --config experiments/fashion_mnist.py --workdir runs/fashion_mnist

PLACEHOLDER
"""

from ncjax.train.config import fashion_mnist_config


def get_config():
  return fashion_mnist_config()
