"""``python -m ncjax`` is the ``ncjax`` command."""

from ncjax.cli import main

main()
