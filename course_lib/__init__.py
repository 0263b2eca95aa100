"""course_lib: the library under the llm-quant-course notebooks.

One concept per module, in three layers: primitives (pure tensor functions), modules
(QuantLinear and the layer swap), and algorithms with their drivers. Plus ``models``
(the offline default model), ``data`` (corpora and calibration batches), ``evaluate``
(the pinned perplexity protocol), ``memory`` (sizes) and ``budget`` (how much to compute).

Nothing is imported eagerly here, so ``import course_lib`` is cheap and has no side effects.
"""

__version__ = "0.1.0"
