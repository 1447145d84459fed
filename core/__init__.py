"""The minimal core of edgesmith: interfaces, plugin manager, model assembly, pipeline.

Nothing concrete lives here: operators, stages, environments, judges, rewards, profilers
and tool-call formats are plugins registered through the ``edgesmith`` entry-point group.
"""

__version__ = "0.1.0"
