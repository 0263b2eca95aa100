"""Measure two ways of caching the course's tokenized corpora: speed and invalidation.

    python benchmarks/tokenize_cache.py                # both routes, every corpus this machine has
    python benchmarks/tokenize_cache.py --repeats 5            # cache folders in a new temporary folder

Routes:

- ``hand-written``: the binary token cache of commit 5a732c8 (its ``course_lib/token_cache.py``,
  read with ``git show``: SHA-256 keys, its own file format, an in-memory memo), driven exactly as
  that commit's ``data.token_ids`` drove it;
- ``datasets``: ``data.token_ids`` of this tree: ``Dataset.from_generator`` over the documents and
  a fingerprinted, cached ``Dataset.map(batched=True)`` for the tokens (``course_lib.token_cache``).

Timing: each repeat makes an empty cache folder (``$QUANT_COURSE_CACHE`` under ``--scratch``) and
runs one process that asks for every split's full stream twice (cold: tokenize and write, then
hot: again in the same process), then a new process that does the same (warm: read from disk,
then hot). Medians over the repeats. The tokenizer is loaded before timing; ``import datasets``
is timed on its own (the datasets route pays it once per process). Children run with
``HF_DATASETS_OFFLINE=1`` and ``HF_HUB_OFFLINE=1``, and count attempts to open a network socket.

Invalidation: each scenario tokenizes an original (the wiki eval documents, the course tokenizer)
and then asks again after a change, either later in the same process or in a new process (where
the files on disk are the only memory). A route is right when the ids equal a direct tokenization
of the changed input; ``stale`` means it served the old ids. The control (no change) must not
tokenize again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = "5a732c8da516e5f6ad42ed26e7554ed665f597fb"  # the last commit with the hand-written binary cache
ROUTES = ("hand-written", "datasets")
ADDED_TOKEN = "ation"  # frequent inside English words, so adding it changes many ids
SCENARIOS = {  # name: (what changes, also run with the change in the same process)
    "control: nothing changes": ("none", True),
    "text: one document edited": ("text", True),
    "text: last document removed": ("text", True),
    "text: same characters, two documents joined": ("text", True),
    "tokenizer: copy with an added token": ("tokenizer", True),
    "tokenizer: same object, add_tokens after use": ("tokenizer", False),
    "tokenizer: same object, normalizer replaced (same size)": ("tokenizer", False),
    "tokenizer: another one, same name and size": ("tokenizer", True),
}


# ---------------------------------------------------------------- inside a child process


def _guard_network() -> list:
    """Record (and refuse) every attempt to open an internet socket in this process."""
    import socket

    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(str(address))
            raise OSError(f"benchmark: network refused ({address})")
        return real_connect(self, address)

    socket.socket.connect = connect
    return attempts


def _hand_written_module():
    """The token_cache module of BASELINE, imported under another name (its relative import still works)."""
    import importlib.util

    source = subprocess.run(["git", "show", f"{BASELINE}:course_lib/token_cache.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("course_lib._token_cache_hand_written", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "course_lib"
    sys.modules[spec.name] = module
    exec(compile(source, f"{BASELINE[:7]}:course_lib/token_cache.py", "exec"), module.__dict__)
    return module


class Route:
    """``token_ids(tokenizer, corpus, split)`` of one route, counting how often a split is tokenized."""

    def __init__(self, name: str):
        import torch

        from course_lib import data, token_cache

        self.name, self.builds, self.data = name, [], data
        if name == "hand-written":
            self.module = _hand_written_module()

            def token_ids(tokenizer, corpus, split):  # BASELINE's data.token_ids, full stream
                texts = [doc["text"] for doc in data.documents(corpus, split)]

                def build():
                    self.builds.append(len(texts))
                    return torch.tensor(data._token_stream(tokenizer, texts, None), dtype=torch.long)

                full = self.module.cached_stream(tokenizer, corpus, split, texts, data.DOCUMENT_SEPARATOR, build)
                return full.clone()

            self.token_ids = token_ids
        else:
            real = token_cache.encode

            def counting(tokenizer, texts):
                if list(texts) != [data.DOCUMENT_SEPARATOR]:
                    self.builds.append(len(texts))
                return real(tokenizer, texts)

            token_cache.encode = counting  # looked up when the map function runs; not part of its fingerprint
            self.token_ids = data.token_ids


def _direct(tokenizer, texts: list[str]) -> list[int]:
    """The reference: each text tokenized on its own, joined by the separator's tokens."""
    from course_lib import data

    separator = tokenizer(data.DOCUMENT_SEPARATOR, add_special_tokens=False)["input_ids"]
    out = []
    for i, text in enumerate(texts):
        out += (separator if i else []) + tokenizer(text, add_special_tokens=False)["input_ids"]
    return out


def child_timing(args) -> dict:
    attempts = _guard_network()
    from transformers import AutoTokenizer

    from course_lib import data

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    import_seconds = None
    if args.route == "datasets":
        start = time.perf_counter()
        import datasets  # noqa: F401  (what the first data.token_ids of a process would pay)
        import_seconds = time.perf_counter() - start
    route = Route(args.route)
    splits = {}
    for corpus in args.corpora:
        for split in data.SPLITS:
            start = time.perf_counter()
            data.documents(corpus, split)  # read by both routes on every call: timed on its own for reference
            documents = time.perf_counter() - start
            start = time.perf_counter()
            ids = route.token_ids(tokenizer, corpus, split)
            first = time.perf_counter() - start
            start = time.perf_counter()
            again = route.token_ids(tokenizer, corpus, split)
            hot = time.perf_counter() - start
            texts = [doc["text"] for doc in data.documents(corpus, split)]
            splits[f"{corpus}/{split}"] = {"first": first, "hot": hot, "documents": documents,
                                           "n_tokens": int(ids.numel()),
                                           "ids": ids.tolist() == _direct(tokenizer, texts) and again.equal(ids)}
    return {"splits": splits, "builds": len(route.builds), "import_datasets": import_seconds,
            "network_attempts": len(attempts)}


def _variant(name: str, tokenizer, texts: list[str], folder: Path, fresh_load):
    """(tokenizer, texts) after the change ``name`` (``tokenizer`` may be changed in place)."""
    import copy

    from tokenizers import normalizers

    if name == "text: one document edited":
        return tokenizer, texts[:3] + [texts[3] + " An added sentence."] + texts[4:]
    if name == "text: last document removed":
        return tokenizer, texts[:-1]
    if name == "text: same characters, two documents joined":
        return tokenizer, [texts[0] + texts[1]] + texts[2:]
    if name == "tokenizer: copy with an added token":
        other = copy.deepcopy(tokenizer)
        other.add_tokens([ADDED_TOKEN])
        return other, texts
    if name == "tokenizer: same object, add_tokens after use":
        tokenizer.add_tokens([ADDED_TOKEN])
        return tokenizer, texts
    if name == "tokenizer: same object, normalizer replaced (same size)":
        tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()
        return tokenizer, texts
    if name == "tokenizer: another one, same name and size":
        other = copy.deepcopy(tokenizer)
        other.backend_tokenizer.normalizer = normalizers.Lowercase()
        other.save_pretrained(folder)  # over the folder the first tokenizer was loaded from
        return fresh_load(), texts
    return tokenizer, texts  # the control


def child_invalidation(args) -> dict:
    attempts = _guard_network()
    from transformers import AutoTokenizer

    from course_lib import data

    folder = Path(args.scratch_tokenizer)  # a copy of the course tokenizer: the same-name scenario rewrites it

    def fresh_load():
        return AutoTokenizer.from_pretrained(folder)

    originals = [doc["text"] for doc in data.documents("wiki", "eval")]
    current = {"texts": originals}
    data.documents = lambda corpus, split: [{"title": f"doc {i}", "text": t} for i, t in enumerate(current["texts"])]
    route = Route(args.route)
    tokenizer = fresh_load()
    out = {"network_attempts": attempts}
    if args.phase in ("before", "same-process"):
        before = route.token_ids(tokenizer, "wiki", "eval")
        out["before_ok"] = before.tolist() == _direct(tokenizer, originals)
    if args.phase in ("after", "same-process"):
        builds = len(route.builds)
        old_ids = _direct(fresh_load(), originals) if args.phase == "after" else before.tolist()
        tokenizer, current["texts"] = _variant(args.scenario, tokenizer, originals, folder, fresh_load)
        expected = _direct(tokenizer, current["texts"])
        after = route.token_ids(tokenizer, "wiki", "eval").tolist()
        out.update(changed=expected != old_ids, correct=after == expected,
                   stale=after == old_ids and expected != old_ids,
                   tokenized_again=len(route.builds) > builds)
    out["network_attempts"] = len(attempts)
    return out


# ---------------------------------------------------------------- the driver


def run_child(args, cache: Path, *extra) -> dict:
    env = dict(os.environ, QUANT_COURSE_CACHE=str(cache), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM=os.environ.get("TOKENIZERS_PARALLELISM", "true"))
    command = [sys.executable, __file__, "--tokenizer", args.tokenizer, *extra]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"child {extra} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def measure_timing(args, scratch: Path) -> dict:
    """The routes take turns within each repeat, so a busy machine slows both alike."""
    table = {route: {"runs": {"cold": [], "warm": []}} for route in ROUTES}
    for repeat in range(args.repeats):
        for route in ROUTES:
            cache = scratch / f"timing-{route}-{repeat}"
            shutil.rmtree(cache, ignore_errors=True)
            for phase in ("cold", "warm"):
                table[route]["runs"][phase].append(run_child(args, cache, "--child", "timing", "--route", route,
                                                             "--corpora", *args.corpora))
    for route in ROUTES:
        table[route]["bytes"] = folder_bytes(scratch / f"timing-{route}-0")
    return table


def measure_invalidation(args, scratch: Path) -> dict:
    from transformers import AutoTokenizer

    results = {}
    for route in ROUTES:
        for scenario, (_, same_process) in SCENARIOS.items():
            for mode in ("new process", "same process") if same_process else ("same process",):
                cache = scratch / "invalidation-cache"
                tokenizer_folder = scratch / "invalidation-tokenizer"
                for path in (cache, tokenizer_folder):
                    shutil.rmtree(path, ignore_errors=True)
                AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(tokenizer_folder)
                common = ["--child", "invalidation", "--route", route, "--scenario", scenario,
                          "--scratch-tokenizer", str(tokenizer_folder)]
                if mode == "new process":
                    first = run_child(args, cache, *common, "--phase", "before")
                    second = run_child(args, cache, *common, "--phase", "after")
                    second["before_ok"] = first["before_ok"]
                    second["network_attempts"] += first["network_attempts"]
                else:
                    second = run_child(args, cache, *common, "--phase", "same-process")
                results[(route, scenario, mode)] = second
    return results


def report(args, timing: dict, invalidation: dict) -> str:
    import platform

    import datasets
    import tokenizers
    import transformers

    lines = [f"python {platform.python_version()}, datasets {datasets.__version__}, transformers "
             f"{transformers.__version__}, tokenizers {tokenizers.__version__}, {os.cpu_count()} CPU cores; "
             f"medians of {args.repeats} repeats, seconds per full split stream",
             "", "| split | tokens | route | cold | warm (new process) | hot (same process) | of which documents() "
             "| ids = reference |", "|---|---|---|---|---|---|---|---|"]
    splits = list(timing[ROUTES[0]]["runs"]["cold"][0]["splits"])
    for split in splits:
        for route in ROUTES:
            runs = timing[route]["runs"]
            cold = statistics.median(r["splits"][split]["first"] for r in runs["cold"])
            warm = statistics.median(r["splits"][split]["first"] for r in runs["warm"])
            hot = statistics.median(r["splits"][split]["hot"] for p in runs.values() for r in p)
            documents = statistics.median(r["splits"][split]["documents"] for p in runs.values() for r in p)
            ok = all(r["splits"][split]["ids"] for p in runs.values() for r in p)
            n_tokens = runs["cold"][0]["splits"][split]["n_tokens"]
            lines.append(f"| {split} | {n_tokens} | {route} | {cold:.3f} | {warm:.3f} | {hot:.3f} "
                         f"| {documents:.3f} | {ok} |")
    lines.append("")
    for route in ROUTES:
        runs = timing[route]["runs"]
        total = {phase: statistics.median(sum(s["first"] for s in r["splits"].values()) for r in runs[phase])
                 for phase in runs}
        builds = {phase: statistics.median(r["builds"] for r in runs[phase]) for phase in runs}
        imports = [r["import_datasets"] for p in runs.values() for r in p if r["import_datasets"] is not None]
        network = sum(r["network_attempts"] for p in runs.values() for r in p)
        lines.append(f"- {route}: all splits cold {total['cold']:.2f} s ({builds['cold']:.0f} tokenizations), "
                     f"warm {total['warm']:.2f} s ({builds['warm']:.0f} tokenizations); "
                     + (f"import datasets {statistics.median(imports):.2f} s once per process; " if imports else "")
                     + f"{timing[route]['bytes'] / 1e6:.1f} MB on disk; network attempts {network}")
    lines += ["", "| change | asked again in | " + " | ".join(ROUTES) + " |", "|---|---|" + "---|" * len(ROUTES)]
    for scenario in SCENARIOS:
        for mode in ("new process", "same process"):
            if (ROUTES[0], scenario, mode) not in invalidation:
                continue
            cells = []
            for route in ROUTES:
                r = invalidation[(route, scenario, mode)]
                if not r["before_ok"] or r["network_attempts"]:
                    cells.append(f"BROKEN {r}")
                elif scenario.startswith("control"):
                    cells.append("right, reused" if r["correct"] and not r["tokenized_again"] else
                                 "right, tokenized again" if r["correct"] else "WRONG ids")
                elif not r["changed"]:
                    cells.append("scenario changes no id")
                else:
                    cells.append("right (tokenized again)" if r["correct"] and r["tokenized_again"] else
                                 "STALE" if r["stale"] else "WRONG ids" if not r["correct"] else "right")
            lines.append(f"| {scenario} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default=None, help="folder for the cache folders (default: a new temporary one)")
    parser.add_argument("--corpora", nargs="+", default=None)
    parser.add_argument("--skip-invalidation", action="store_true")
    parser.add_argument("--tokenizer", default=None, help=argparse.SUPPRESS)  # children: the model folder
    parser.add_argument("--child", choices=("timing", "invalidation"), help=argparse.SUPPRESS)
    parser.add_argument("--route", choices=ROUTES, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("before", "after", "same-process"), help=argparse.SUPPRESS)
    parser.add_argument("--scratch-tokenizer", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        result = child_timing(args) if args.child == "timing" else child_invalidation(args)
        print(json.dumps(result))
        return
    from course_lib import data, models

    args.tokenizer = str(models.ensure_cache())  # the converted course model (its tokenizer), in the usual cache
    args.corpora = args.corpora or list(data.available_corpora())
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="tokenize-cache-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    timing = measure_timing(args, scratch)
    invalidation = {} if args.skip_invalidation else measure_invalidation(args, scratch)
    print(report(args, timing, invalidation))


if __name__ == "__main__":
    main()
