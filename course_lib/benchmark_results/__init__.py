"""Recorded GPU benchmark results, shipped with the package so notebook 09 can plot them anywhere.

Each ``*.json`` here is a byte-for-byte copy of the file of the same name in the
repository's ``benchmarks/results/`` (written by ``benchmarks/kernels.py``; the ``.md``
next to it there says how it was run and what it shows). tests/test_packaging.py checks
that the copies stay identical. Read one with ``importlib.resources``, never through a
path relative to a notebook:

    from importlib import resources
    text = (resources.files("course_lib.benchmark_results") / "h100-2026-11-27.json").read_text()
"""
