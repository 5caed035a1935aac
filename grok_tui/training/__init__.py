"""The training loops: the only code that trains, and with the worker the only code that imports torch.

``neural`` trains the transformer and the MLP by gradient descent, ``rfm`` iterates a Recursive Feature
Machine (the maths in grok_tui/models/rfm.py); ``common`` holds what both need. Each writes its run
directory through grok_tui.recorder only.
"""
