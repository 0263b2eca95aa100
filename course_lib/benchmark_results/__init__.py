"""Recorded GPU benchmark results, shipped with the package so notebook 09 can plot them anywhere.

Each ``*.json`` here is a byte-for-byte copy of the file of the same name in the
repository's ``benchmarks/results/`` (written by ``benchmarks/kernels.py``; the ``.md``
next to it there says how it was run and what it shows). tests/test_packaging.py checks
that the copies stay identical. ``h100-2026-11-27.json`` is the first recorded run;
``h100-2026-11-27-v2.json`` the rerun with W4A16 v5 and W8A16 v4; ``h100-2026-11-27-v4.json`` the run with
W4A16 v6 / v7 and W8A16 v5 (what notebook 09 plots).
Read one with ``importlib.resources``, never through a path relative to a notebook:

    from importlib import resources
    text = (resources.files("course_lib.benchmark_results") / "h100-2026-11-27.json").read_text()
"""
