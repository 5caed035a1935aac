"""``grok import FILE``: a peer's checkpoint (Nanda et al.'s or TransformerLens's layout, one state dict
or a series over training) brought in as a run directory that ``grok inspect``, ``grok show`` and the app
read like our own runs.

- ``peer``: reading the file safely (``torch.load(weights_only=True)``) and finding its state dicts and steps;
- ``layouts``: a state dict mapped onto our checkpoint names, every shape checked;
- ``run``: the run directory, written with the worker's own measures and renamed into place whole.
"""
