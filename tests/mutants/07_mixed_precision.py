"""Plausible wrong answers for notebook 07 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "decomposed_matmul": {
        "reference call": '''
def decomposed_matmul(X, W, threshold=6.0):
    from course_lib import llm_int8
    return llm_int8.decomposed_matmul(X, W, threshold).float()
''',
        "> instead of >= at the threshold": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() > threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        q_X, scale_X = quantize_per_token(X.masked_fill(outliers, 0))
        q_W, scale_W = quantize_per_token(W.masked_fill(outliers, 0))
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "forgets the absolute value": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        q_X, scale_X = quantize_per_token(X.masked_fill(outliers, 0))
        q_W, scale_W = quantize_per_token(W.masked_fill(outliers, 0))
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "outliers chosen per token, not per input column": '''
def decomposed_matmul(X, W, threshold=6.0):
    big = X.abs() >= threshold  # [n_tokens, in]: each token's own outliers
    Y = X.masked_fill(~big, 0).float() @ W.float().T
    q_X, scale_X = quantize_per_token(X.masked_fill(big, 0))
    q_W, scale_W = quantize_per_token(W)
    return Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
''',
        "a column is an outlier only when every token reaches the threshold": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).all(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        q_X, scale_X = quantize_per_token(X.masked_fill(outliers, 0))
        q_W, scale_W = quantize_per_token(W.masked_fill(outliers, 0))
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "the outlier part quantized too": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = torch.zeros(X.shape[0], W.shape[0])
    for part in (outliers, ~outliers):
        if part.any():
            q_X, scale_X = quantize_per_token(X.masked_fill(~part, 0))
            q_W, scale_W = quantize_per_token(W.masked_fill(~part, 0))
            Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "one absmax scale for all of X (per tensor)": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        X_rest = X.masked_fill(outliers, 0)
        scale_X = X_rest.abs().max().clamp(min=1e-12) / 127
        q_X = torch.round(X_rest / scale_X).clamp(-127, 127).to(torch.int8)
        q_W, scale_W = quantize_per_token(W.masked_fill(outliers, 0))
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "token scales over the whole row, outlier columns included": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        q_X, scale_X = quantize_per_token(X)
        q_W, scale_W = quantize_per_token(W)
        q_X, q_W = q_X.masked_fill(outliers, 0), q_W.masked_fill(outliers, 0)
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "weight scales over the whole row, outlier columns included": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        q_X, scale_X = quantize_per_token(X.masked_fill(outliers, 0))
        q_W, scale_W = quantize_per_token(W)
        Y = Y + int8_matmul(q_X, q_W.masked_fill(outliers, 0)).float() * scale_X * scale_W.T
    return Y
''',
        "the int8 part keeps the outlier columns too": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    q_X, scale_X = quantize_per_token(X)
    q_W, scale_W = quantize_per_token(W)
    return Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
''',
        "zeros the outlier columns of X in place": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    if not outliers.all():
        X[:, outliers] = 0
        q_X, scale_X = quantize_per_token(X)
        q_W, scale_W = quantize_per_token(W.masked_fill(outliers, 0))
        Y = Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
    return Y
''',
        "no case for all columns outliers": '''
def decomposed_matmul(X, W, threshold=6.0):
    outliers = (X.abs() >= threshold).any(dim=0)
    Y = X[:, outliers].float() @ W[:, outliers].float().T
    q_X, scale_X = quantize_per_token(X[:, ~outliers])
    q_W, scale_W = quantize_per_token(W[:, ~outliers])
    return Y + int8_matmul(q_X, q_W).float() * scale_X * scale_W.T
''',
    },
    "nf4_codebook": {
        "reference call": '''
def nf4_codebook():
    from course_lib import nf4
    return nf4.nf4_codebook()
''',
        "evenly spaced levels (INT4 with an exact zero)": '''
def nf4_codebook():
    negative = torch.linspace(-1, 0, 8)[:-1]
    positive = torch.linspace(0, 1, 9)[1:]
    return torch.cat([negative, torch.zeros(1), positive])
''',
        "16 symmetric quantiles, no exact zero": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    values = torch.special.ndtri(torch.linspace(1 - offset, offset, 16, dtype=torch.float64))
    return (values / values.max()).float()
''',
        "not normalised to [-1, 1]": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    return torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values.float()
''',
        "the 16-level tail as the offset": '''
def nf4_codebook():
    offset = 1 - 1 / (2 * 16)
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])
    return (values / torch.special.ndtri(torch.tensor(offset, dtype=torch.float64))).sort().values.float()
''',
        "8 negative and 7 positive levels": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])
    return (values / torch.special.ndtri(torch.tensor(offset, dtype=torch.float64))).sort().values.float()
''',
        "keeps the 0.5 end of the linspaces": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64))
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64))
    values = torch.cat([positive, negative])
    return (values / torch.special.ndtri(torch.tensor(offset, dtype=torch.float64))).sort().values.float()
''',
        "not sorted": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])
    return (values / torch.special.ndtri(torch.tensor(offset, dtype=torch.float64))).float()
''',
        "returns float64": '''
def nf4_codebook():
    offset = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])
    return (values / torch.special.ndtri(torch.tensor(offset, dtype=torch.float64))).sort().values
''',
    },
    "nf4_quantize": {
        "reference call": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    from course_lib import nf4
    from course_lib.packing import unpack_int4
    stored = nf4.quantize_nf4(W, block_size, double_quant)
    return unpack_int4(stored.codes)[:W.numel()].to(torch.uint8), stored.block_absmax()
''',
        "nearest level by rounding the index": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    q = torch.round((blocks / safe[:, None] + 1) / 2 * 15).clamp(0, 15)
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "searchsorted on the levels, not the midpoints": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    q = torch.searchsorted(codebook, (blocks / safe[:, None]).contiguous()).clamp(max=15)
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "one absmax for the whole tensor": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    flat = W.detach().float().reshape(-1)
    absmax = flat.abs().max().reshape(1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    q = (flat[:, None] / safe - codebook).abs().argmin(dim=-1)
    return q.to(torch.uint8), absmax
''',
        "blocks along each row": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    rows = W.detach().float().reshape(-1, W.shape[-1])
    rows = F.pad(rows, (0, -rows.shape[1] % block_size))
    blocks = rows.reshape(rows.shape[0], -1, block_size)
    absmax = blocks.abs().amax(dim=-1)  # [rows, blocks per row]
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax.reshape(-1))).reshape(absmax.shape)
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    q = (blocks[..., None] / safe[..., None, None] - codebook).abs().argmin(dim=-1)
    q = q.reshape(rows.shape[0], -1)[:, :W.shape[-1]]
    return q.reshape(-1).to(torch.uint8), absmax.reshape(-1)
''',
        "max, not max |w|": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.amax(dim=1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    q = (blocks[..., None] / safe[:, None, None] - codebook).abs().argmin(dim=-1)
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "divides an all-zero block by 0": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    q = torch.searchsorted(midpoints, (blocks / absmax[:, None]).contiguous())
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "codes chosen against the exact absmax, not the decoded one": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    q = torch.searchsorted(midpoints, (blocks / safe[:, None]).contiguous())
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax))
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "returns the exact absmax under double quantization": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    if double_quant:
        decoded = nf4.double_dequantize(*nf4.double_quantize(absmax))
        safe = torch.where(decoded != 0, decoded, torch.ones_like(decoded))
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    q = torch.searchsorted(midpoints, (blocks / safe[:, None]).contiguous())
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "second-level blocks of block_size, not 256": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    if double_quant:
        absmax = nf4.double_dequantize(*nf4.double_quantize(absmax, block_size), block_size)
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    q = torch.searchsorted(midpoints, (blocks / safe[:, None]).contiguous())
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
        "ignores double_quant": '''
def nf4_quantize(W, block_size=64, double_quant=True):
    codebook = nf4_codebook()
    numel = W.numel()
    blocks = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    q = torch.searchsorted(midpoints, (blocks / safe[:, None]).contiguous())
    return q.reshape(-1)[:numel].to(torch.uint8), absmax
''',
    },
    "sensitivity_scan": {
        "reference call": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    from course_lib import sensitivity
    return dict(sensitivity.sensitivity_scan(model, units, quantizer, evaluate, progress=False).metric)
''',
        "never restores the weights": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric = {}
    with torch.no_grad():
        for label, names in units.items():
            for name in names:
                W = model.get_submodule(name).weight
                W.copy_(quantizer(W.detach().clone()).to(W.dtype))
            metric[label] = float(evaluate(model))
    return metric
''',
        "restores only after the last unit": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric, saved = {}, {}
    try:
        with torch.no_grad():
            for label, names in units.items():
                for name in names:
                    W = model.get_submodule(name).weight
                    saved.setdefault(name, W.detach().clone())
                    W.copy_(quantizer(W.detach().clone()).to(W.dtype))
                metric[label] = float(evaluate(model))
    finally:
        with torch.no_grad():
            for name, W in saved.items():
                model.get_submodule(name).weight.copy_(W)
    return metric
''',
        "saves the weights without a copy": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric = {}
    for label, names in units.items():
        saved = {}
        try:
            with torch.no_grad():
                for name in names:
                    W = model.get_submodule(name).weight
                    saved[name] = W.detach()
                    W.copy_(quantizer(W.detach().clone()).to(W.dtype))
            metric[label] = float(evaluate(model))
        finally:
            with torch.no_grad():
                for name, W in saved.items():
                    model.get_submodule(name).weight.copy_(W)
    return metric
''',
        "replaces the Parameter instead of copying into it": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric = {}
    for label, names in units.items():
        saved = {}
        try:
            for name in names:
                layer = model.get_submodule(name)
                saved[name] = layer.weight
                layer.weight = torch.nn.Parameter(quantizer(layer.weight.detach().clone()).to(layer.weight.dtype))
            metric[label] = float(evaluate(model))
        finally:
            for name, W in saved.items():
                model.get_submodule(name).weight = W
    return metric
''',
        "returns the damage, not the metric": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    baseline = float(evaluate(model))
    metric = {}
    for label, names in units.items():
        saved = {}
        try:
            with torch.no_grad():
                for name in names:
                    W = model.get_submodule(name).weight
                    saved[name] = W.detach().clone()
                    W.copy_(quantizer(W.detach().clone()).to(W.dtype))
            metric[label] = float(evaluate(model)) - baseline
        finally:
            with torch.no_grad():
                for name, W in saved.items():
                    model.get_submodule(name).weight.copy_(W)
    return metric
''',
        "no try/finally: an error leaves the unit quantized": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric = {}
    for label, names in units.items():
        saved = {}
        with torch.no_grad():
            for name in names:
                W = model.get_submodule(name).weight
                saved[name] = W.detach().clone()
                W.copy_(quantizer(W.detach().clone()).to(W.dtype))
        metric[label] = float(evaluate(model))
        with torch.no_grad():
            for name, W in saved.items():
                model.get_submodule(name).weight.copy_(W)
    return metric
''',
        "quantizes only the first layer of each unit": '''
def sensitivity_scan(model, units, quantizer, evaluate):
    metric = {}
    for label, names in units.items():
        W = model.get_submodule(names[0]).weight
        saved = W.detach().clone()
        try:
            with torch.no_grad():
                W.copy_(quantizer(W.detach().clone()).to(W.dtype))
            metric[label] = float(evaluate(model))
        finally:
            with torch.no_grad():
                W.copy_(saved)
    return metric
''',
    },
}
