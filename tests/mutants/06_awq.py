"""Plausible wrong answers for notebook 06 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "salient_channels": {
        "reference call": '''
def salient_channels(mean_abs, fraction=0.01):
    return awq.salient_channels(mean_abs, fraction)
''',
        "the smallest channels, not the largest": '''
def salient_channels(mean_abs, fraction=0.01):
    if fraction == 0:
        return torch.empty(0, dtype=torch.long)
    k = max(1, round(fraction * mean_abs.numel()))
    return torch.argsort(mean_abs)[:k]
''',
        "k truncated with int(), not rounded": '''
def salient_channels(mean_abs, fraction=0.01):
    if fraction == 0:
        return torch.empty(0, dtype=torch.long)
    k = max(1, int(fraction * mean_abs.numel()))
    return torch.topk(mean_abs, k).indices
''',
        "k rounded up with ceil": '''
import math

def salient_channels(mean_abs, fraction=0.01):
    k = math.ceil(fraction * mean_abs.numel())
    return torch.topk(mean_abs, k).indices
''',
        "no max(1, ...): a small fraction keeps nothing": '''
def salient_channels(mean_abs, fraction=0.01):
    k = round(fraction * mean_abs.numel())
    return torch.topk(mean_abs, k).indices
''',
        "fraction 0 still keeps one channel": '''
def salient_channels(mean_abs, fraction=0.01):
    k = max(1, round(fraction * mean_abs.numel()))
    return torch.topk(mean_abs, k).indices
''',
        "the values, not the indices": '''
def salient_channels(mean_abs, fraction=0.01):
    if fraction == 0:
        return torch.empty(0)
    k = max(1, round(fraction * mean_abs.numel()))
    return torch.topk(mean_abs, k).values
''',
        "a boolean mask, not indices": '''
def salient_channels(mean_abs, fraction=0.01):
    mask = torch.zeros(mean_abs.numel(), dtype=torch.bool)
    if fraction > 0:
        mask[torch.topk(mean_abs, max(1, round(fraction * mean_abs.numel()))).indices] = True
    return mask
''',
        "threshold at the k-th largest value keeps every tie": '''
def salient_channels(mean_abs, fraction=0.01):
    if fraction == 0:
        return torch.empty(0, dtype=torch.long)
    k = max(1, round(fraction * mean_abs.numel()))
    kth = mean_abs.sort(descending=True).values[k - 1]
    return (mean_abs >= kth).nonzero().squeeze(1)
''',
        "argmax k times, knocking out mean_abs itself": '''
def salient_channels(mean_abs, fraction=0.01):
    if fraction == 0:
        return torch.empty(0, dtype=torch.long)
    chosen = []
    for _ in range(max(1, round(fraction * mean_abs.numel()))):
        i = int(torch.argmax(mean_abs))
        chosen.append(i)
        mean_abs[i] = -float("inf")
    return torch.tensor(chosen)
''',
    },
    "search_alpha": {
        "reference call": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    result = search_scale_reference(Ws, X, n_bits, group_size, n_grid=n_grid)
    return result.alphas, result.errors, result.best_alpha
''',
        "grid from linspace(0, 1): α = 1 included": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.linspace(0, 1, n_grid)
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "s not clamped (a dead channel divides by zero)": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "m = max |x|, not mean |x|": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().amax(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "X not divided by s": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float(((X @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "the weights' error, not the outputs'": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float(((Q / s - W) ** 2).sum())
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "mean over outputs too, not the sum over tokens / tokens": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).mean())
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "symmetric grid": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=True)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "group_size ignored (always 64)": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, 64, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
        "the last minimum at a tie": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    best, best_error = 0, float("inf")
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Q = pseudo_quantize(W * s, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - X @ W.T) ** 2).sum()) / X.shape[0]
        errors[i] = total
        if total <= best_error:
            best, best_error = i, total
    return alphas, errors, float(alphas[best])
''',
        "scales the weights in place (.float() of a float32 tensor is no copy)": '''
def search_alpha(Ws, X, n_bits=4, group_size=64, n_grid=20):
    X = X.float()
    m = X.abs().mean(dim=0)
    alphas = torch.arange(n_grid, dtype=torch.float32) / n_grid
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = m.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for W in Ws:
            W = W.detach().float()
            Y = X @ W.T
            W *= s
            Q = pseudo_quantize(W, n_bits, group_size, symmetric=False)
            total += float((((X / s) @ Q.T - Y) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return alphas, errors, float(alphas[best])
''',
    },
    "fold_scales": {
        "reference call": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    fold.fold_scales(producer, consumers, s)
''',
        "inverted: producer times s, consumers divided by s": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    if producer.weight.dim() == 1:
        producer.weight.mul_(s)
    else:
        producer.weight.mul_(s[:, None])
    if getattr(producer, "bias", None) is not None:
        producer.bias.mul_(s)
    for linear in consumers:
        linear.weight.div_(s[None, :])
''',
        "a linear producer's columns divided, not its rows": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    producer.weight.div_(s)
    if getattr(producer, "bias", None) is not None:
        producer.bias.div_(s)
    for linear in consumers:
        linear.weight.mul_(s[None, :])
''',
        "a linear producer's bias left alone": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    if producer.weight.dim() == 1:
        producer.weight.div_(s)
    else:
        producer.weight.div_(s[:, None])
    for linear in consumers:
        linear.weight.mul_(s[None, :])
''',
        "only the first consumer scaled": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    if producer.weight.dim() == 1:
        producer.weight.div_(s)
    else:
        producer.weight.div_(s[:, None])
    if getattr(producer, "bias", None) is not None:
        producer.bias.div_(s)
    consumers[0].weight.mul_(s[None, :])
''',
        "consumers' rows scaled, not their columns": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    if producer.weight.dim() == 1:
        producer.weight.div_(s)
    else:
        producer.weight.div_(s[:, None])
    if getattr(producer, "bias", None) is not None:
        producer.bias.div_(s)
    for linear in consumers:
        linear.weight.mul_(s[:, None])
''',
        "new tensors computed, the modules left unchanged": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    weight = producer.weight / (s if producer.weight.dim() == 1 else s[:, None])
    if getattr(producer, "bias", None) is not None:
        bias = producer.bias / s
    for linear in consumers:
        scaled = linear.weight * s[None, :]
''',
        "hasattr(producer, 'bias'): a linear without bias has bias None": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    if producer.weight.dim() == 1:
        producer.weight.div_(s)
    else:
        producer.weight.div_(s[:, None])
    if hasattr(producer, "bias"):
        producer.bias.div_(s)
    for linear in consumers:
        linear.weight.mul_(s[None, :])
''',
        "s inverted in place": '''
@torch.no_grad()
def fold_scales(producer, consumers, s):
    for linear in consumers:
        linear.weight.mul_(s[None, :])
    inv = s.reciprocal_()
    if producer.weight.dim() == 1:
        producer.weight.mul_(inv)
    else:
        producer.weight.mul_(inv[:, None])
    if getattr(producer, "bias", None) is not None:
        producer.bias.mul_(inv)
''',
    },
}
