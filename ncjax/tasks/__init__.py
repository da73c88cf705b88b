"""Tasks: what the trainer trains on. One module per task, chosen by ``config.task``.

    task = ncjax.tasks.make_task(config)
    records = ncjax.train.train(task, workdir)

A task provides ``config``, ``num_classes``, ``mesh`` (the device mesh it places its data
on, :mod:`ncjax.train.mesh`), ``model`` (returning ``(logits, features)``),
``example_inputs`` (1, ...) for initialisation, ``train_stream(step)`` (the members'
training batches from ``step`` on: the data position is the step), for the trainer's
chunked program (``ncjax.train.state.make_train_chunk``) ``train_feed(step)`` (each
call's data), ``draw_batch(data, t)`` (step t's batches, traced) and ``chunk_limit``
(steps per call, None: any), ``evaluate(states)`` (the logged metrics, keys as in
``ncjax.train.evaluate``) and ``examples(split, limit)`` (inputs and labels, for
``ncjax analyze --metrics``). The loss
is the same for every task (``config.loss``, see ``ncjax.train.state.make_loss``).
"""

from __future__ import annotations

import ml_collections


def make_task(config: ml_collections.ConfigDict):
  """The task named by ``config.task`` (its data loaded, its model built)."""
  if config.task == "grokking":
    from ncjax.tasks.grokking import Grokking
    return Grokking(config)
  if config.task == "classification":
    from ncjax.tasks.classification import Classification
    return Classification(config)
  raise ValueError(f"config.task must be grokking or classification, got {config.task!r}.")
