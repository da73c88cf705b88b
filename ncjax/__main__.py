"""``python -m ncjax`` is the ``ncjax`` command."""

from ncjax.cli import main

if __name__ == "__main__":
  main()
