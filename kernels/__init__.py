"""Triton kernels for quantized layers, shipped as ``course_lib.kernels``.

The source lives in the repository's top-level ``kernels/`` folder and is mapped into
``course_lib`` by setuptools (``package-dir``), so no top-level package named ``kernels``
is ever installed. Import it as ``from course_lib import kernels`` or
``import course_lib.kernels``.

To run a kernel on a CPU through Triton's interpreter, set ``TRITON_INTERPRET=1`` in the
environment *before* this package is imported.
"""

__all__: list[str] = []
