"""Plausible wrong answers for notebook 04 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "find_outliers": {
        "reference call": '''
def find_outliers(X, threshold=6.0):
    from course_lib import input_stats
    counts = input_stats.stats_of(X.reshape(-1, X.shape[-1]), threshold).outlier_count
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "> instead of >=": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() > threshold).sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "no abs: negative outliers missed": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X >= threshold).sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "leading dims not flattened": '''
def find_outliers(X, threshold=6.0):
    counts = (X.abs() >= threshold).sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "counts per token, not per channel": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= threshold).sum(dim=-1)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "whether, not how many (any instead of sum)": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= threshold).any(dim=0).long()
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "channels as a bool mask": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= threshold).sum(dim=0)
    return counts > 0, counts
''',
        "channels ordered by count, busiest first": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= threshold).sum(dim=0)
    order = counts.argsort(descending=True, stable=True)
    return order[counts[order] > 0], counts
''',
        "threshold fixed at 6": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= 6).sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "float counts": '''
def find_outliers(X, threshold=6.0):
    X = X.reshape(-1, X.shape[-1])
    counts = (X.abs() >= threshold).float().sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
        "view instead of reshape": '''
def find_outliers(X, threshold=6.0):
    X = X.view(-1, X.shape[-1])
    counts = (X.abs() >= threshold).sum(dim=0)
    return torch.nonzero(counts > 0).flatten(), counts
''',
    },
    "quantize_per_token": {
        "reference call": '''
def quantize_per_token(X, n_bits=8):
    from course_lib import act_quant
    return act_quant.quantize_per_token(X, n_bits)
''',
        "the library's absmax_quantize over the last dim": '''
def quantize_per_token(X, n_bits=8):
    from course_lib import quantize
    return quantize.absmax_quantize(X, n_bits, dim=-1)
''',
        "one scale for the whole tensor": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax() / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale.reshape([1] * X.dim()).expand(*X.shape[:-1], 1)
''',
        "one scale per channel (dim 0)": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax(dim=0, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "reduces over dim 1, not the last dim": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "no keepdim: scale [...], not [..., 1]": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax(dim=-1) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale.unsqueeze(-1)).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "max instead of max |x|": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "no guard for an all-zero row": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax(dim=-1, keepdim=True) / qmax
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "truncates instead of rounding": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float()
    scale = X.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = (X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "ignores n_bits": '''
def quantize_per_token(X, n_bits=8):
    X = X.float()
    scale = X.abs().amax(dim=-1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-127, 127).to(torch.int8)
    return q, scale
''',
        "divides by 2**(n_bits-1), not 2**(n_bits-1) - 1": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1)
    X = X.float()
    scale = X.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax - 1).to(torch.int8)
    return q, scale
''',
        "scale in the input's dtype": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    scale = X.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "flattens the tokens and never reshapes back": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    X = X.float().reshape(-1, X.shape[-1])
    scale = X.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X / scale).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
        "divides X in place": '''
def quantize_per_token(X, n_bits=8):
    qmax = 2 ** (n_bits - 1) - 1
    scale = X.float().abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(X.div_(scale)).clamp(-qmax, qmax).to(torch.int8)
    return q, scale
''',
    },
    "smoothing_factor": {
        "reference call": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    from course_lib import smoothquant
    return smoothquant.smoothing_factor(act_absmax, weight_absmax, alpha)
''',
        "alpha and 1 - alpha swapped": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float().clamp(min=1e-5)
    w = weight_absmax.float().clamp(min=1e-5)
    return x.pow(1 - alpha) / w.pow(alpha)
''',
        "a square root, whatever alpha": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float().clamp(min=1e-5)
    w = weight_absmax.float().clamp(min=1e-5)
    return (x / w).sqrt()
''',
        "multiplies by the weight term": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float().clamp(min=1e-5)
    w = weight_absmax.float().clamp(min=1e-5)
    return x.pow(alpha) * w.pow(1 - alpha)
''',
        "no floor: a dead channel gives 0 or inf": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    return act_absmax.float().pow(alpha) / weight_absmax.float().pow(1 - alpha)
''',
        "floors only the activations": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float().clamp(min=1e-5)
    return x.pow(alpha) / weight_absmax.float().pow(1 - alpha)
''',
        "adds 1e-5 instead of flooring": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float() + 1e-5
    w = weight_absmax.float() + 1e-5
    return x.pow(alpha) / w.pow(1 - alpha)
''',
        "floors s, not the maxima": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    s = act_absmax.float().pow(alpha) / weight_absmax.float().pow(1 - alpha)
    return torch.nan_to_num(s, posinf=1e5).clamp(min=1e-5)
''',
        "floor 1e-8": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.float().clamp(min=1e-8)
    w = weight_absmax.float().clamp(min=1e-8)
    return x.pow(alpha) / w.pow(1 - alpha)
''',
        "keeps the input dtype": '''
def smoothing_factor(act_absmax, weight_absmax, alpha=0.5):
    x = act_absmax.clamp(min=1e-5)
    w = weight_absmax.clamp(min=1e-5)
    return x.pow(alpha) / w.pow(1 - alpha)
''',
    },
}
