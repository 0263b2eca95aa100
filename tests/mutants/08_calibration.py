"""Plausible wrong answers for notebook 08 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "mixed_calibration": {
        "reference call": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    from course_lib import calibration
    return calibration.build(tokenizer, weights, n_samples, seq_len, seed).input_ids
''',
        "no shuffle: grouped by corpus": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    return torch.cat(parts)
''',
        "shuffles with the global random generator": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples)]
''',
        "shuffles with seed 0 whatever the seed": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(0))]
''',
        "draws the windows with the default seed": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "equal split, the remainder to the last corpus": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    corpora = list(weights)
    counts = {corpus: n_samples // len(corpora) for corpus in corpora}
    counts[corpora[-1]] += n_samples - sum(counts.values())
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "rounds each share instead of mix_counts": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    total = sum(weights.values())
    counts = {corpus: round(n_samples * w / total) for corpus, w in weights.items()}
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(ids.shape[0], generator=torch.Generator().manual_seed(seed))]
''',
        "corpora in alphabetical order": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, counts[corpus], seq_len, seed) for corpus in sorted(counts)]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "shuffles each corpus's windows before concatenating": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = []
    for corpus, count in counts.items():
        windows = data.calibration_batches(tokenizer, corpus, count, seq_len, seed)
        parts.append(windows[torch.randperm(count, generator=torch.Generator().manual_seed(seed))])
    return torch.cat(parts)
''',
        "a different seed for each corpus": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed + i)
             for i, (corpus, count) in enumerate(counts.items())]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "windows drawn from the eval split": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = []
    for corpus, count in counts.items():
        tokens = data.token_ids(tokenizer, corpus, "eval")
        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, tokens.numel() - seq_len + 1, (count,), generator=generator)
        parts.append(tokens[starts[:, None] + torch.arange(seq_len)])
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "normalises weights in place": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    total = sum(weights.values())
    for corpus in weights:
        weights[corpus] /= total
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
''',
        "shuffles the tokens of each window, not the windows": '''
def mixed_calibration(tokenizer, weights, n_samples, seq_len, seed=0):
    counts = calibration.mix_counts(weights, n_samples)
    parts = [data.calibration_batches(tokenizer, corpus, count, seq_len, seed) for corpus, count in counts.items()]
    ids = torch.cat(parts)
    return ids[:, torch.randperm(seq_len, generator=torch.Generator().manual_seed(seed))]
''',
    },
    "mismatch_ratio": {
        "reference call": '''
def mismatch_ratio(increase, calib, eval_domain):
    from course_lib import calibration
    return calibration.mismatch_ratio(increase, calib, eval_domain)
''',
        "inverted: in-domain over off-domain": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return in_domain / increase[(calib, eval_domain)]
''',
        "the pair transposed: Δ(eval, calib)": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((eval_domain, calib), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return increase[(eval_domain, calib)] / in_domain
''',
        "divides by Δ(calib, calib)": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (calib, calib)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    baseline = increase[(calib, calib)]
    if baseline <= 0:
        raise ValueError(f"the in-domain increase {baseline} is not positive")
    return increase[(calib, eval_domain)] / baseline
''',
        "< 0 instead of <= 0: divides by zero": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain < 0:
        raise ValueError(f"the in-domain increase {in_domain} is negative")
    return increase[(calib, eval_domain)] / in_domain
''',
        "only an exact zero refused": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain == 0:
        raise ValueError("the in-domain increase is zero")
    return increase[(calib, eval_domain)] / in_domain
''',
        "a missing pair raises KeyError": '''
def mismatch_ratio(increase, calib, eval_domain):
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return increase[(calib, eval_domain)] / in_domain
''',
        "a missing off-domain pair counts as 0": '''
def mismatch_ratio(increase, calib, eval_domain):
    if (eval_domain, eval_domain) not in increase:
        raise ValueError(f"no increase for ({eval_domain!r}, {eval_domain!r})")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return increase.get((calib, eval_domain), 0.0) / in_domain
''',
        "the ValueError does not name the pair": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError("a pair is missing from increase")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return increase[(calib, eval_domain)] / in_domain
''',
        "refuses a negative off-domain Δ too": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
        if increase[key] <= 0:
            raise ValueError(f"the increase {increase[key]} of {key} is not positive")
    return increase[(calib, eval_domain)] / increase[(eval_domain, eval_domain)]
''',
        "the ratio of absolute increases": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return abs(increase[(calib, eval_domain)]) / in_domain
''',
        "the difference, not the ratio": '''
def mismatch_ratio(increase, calib, eval_domain):
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase for {key}")
    in_domain = increase[(eval_domain, eval_domain)]
    if in_domain <= 0:
        raise ValueError(f"the in-domain increase {in_domain} is not positive")
    return increase[(calib, eval_domain)] - in_domain
''',
    },
}
