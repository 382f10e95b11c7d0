"""Studio: a production pipeline for generative video, audio and stills.

Read ``studio/pipeline.py`` first: it lists the stages in order.
"""

__version__ = "0.1.0"
