"""Plausible wrong answers for notebook 05 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "accumulate_hessian": {
        "reference call": '''
def accumulate_hessian(H, n_seen, X):
    from course_lib.input_stats import HessianAccumulator
    chunk = HessianAccumulator(X.shape[-1])
    chunk.add(X)
    m = chunk.n_tokens
    return H * (n_seen / (n_seen + m)) + chunk.H * (m / (n_seen + m)), n_seen + m
''',
        "no factor 2": '''
def accumulate_hessian(H, n_seen, X):
    X = X.reshape(-1, X.shape[-1]).float()
    m = X.shape[0]
    n_total = n_seen + m
    return H * (n_seen / n_total) + (X.T @ X) / n_total, n_total
''',
        "old H not rescaled": '''
def accumulate_hessian(H, n_seen, X):
    X = X.reshape(-1, X.shape[-1]).float()
    m = X.shape[0]
    n_total = n_seen + m
    return H + (2.0 / n_total) * (X.T @ X), n_total
''',
        "running sum, not a mean": '''
def accumulate_hessian(H, n_seen, X):
    X = X.reshape(-1, X.shape[-1]).float()
    return H + 2.0 * (X.T @ X), n_seen + X.shape[0]
''',
        "chunk divided by its own size": '''
def accumulate_hessian(H, n_seen, X):
    X = X.reshape(-1, X.shape[-1]).float()
    m = X.shape[0]
    n_total = n_seen + m
    return H * (n_seen / n_total) + (2.0 / m) * (X.T @ X), n_total
''',
        "counts sequences, not tokens": '''
def accumulate_hessian(H, n_seen, X):
    m = X.shape[0]
    X = X.reshape(-1, X.shape[-1]).float()
    n_total = n_seen + m
    return H * (n_seen / n_total) + (2.0 / n_total) * (X.T @ X), n_total
''',
        "XᵀX in the chunk's dtype": '''
def accumulate_hessian(H, n_seen, X):
    X = X.reshape(-1, X.shape[-1])
    m = X.shape[0]
    n_total = n_seen + m
    return H * (n_seen / n_total) + (2.0 / n_total) * (X.T @ X).float(), n_total
''',
    },
    "obs_column_step": {
        "reference call": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    from course_lib import gptq
    # the library's GPTQ run on columns j.. (whose inverse Hessian is H_inv[j:, j:]) for column j's value
    result = gptq.gptq_quantize_reference(W[:, j:], torch.linalg.inv(H_inv[j:, j:]), n_bits, "channel", damp_percent=0.0)
    w_hat = result.W_hat[:, 0].to(W.dtype)
    W, H_inv = W.clone(), H_inv.clone()
    delta = (W[:, j] - w_hat) / H_inv[j, j]
    W[:, j:] -= delta[:, None] * H_inv[j:j + 1, j:]
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]
    return w_hat, W, H_inv
''',
        "multiplies by [H⁻¹]_jj instead of dividing": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) * H_inv[j, j]
    W[:, j:] -= delta * H_inv[j:j + 1, j:]
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]
    return w_hat[:, 0], W, H_inv
''',
        "divides by H_jj, not [H⁻¹]_jj": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    H = torch.linalg.inv(H_inv[j:, j:])  # the Hessian of the inputs still in the problem
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) / H[0, 0]
    W[:, j:] -= delta * H_inv[j:j + 1, j:]
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]
    return w_hat[:, 0], W, H_inv
''',
        "input j not dropped from H⁻¹": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) / H_inv[j, j]
    W[:, j:] -= delta * H_inv[j:j + 1, j:]
    return w_hat[:, 0], W, H_inv
''',
        "elimination not divided by [H⁻¹]_jj": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) / H_inv[j, j]
    W[:, j:] -= delta * H_inv[j:j + 1, j:]
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :]
    return w_hat[:, 0], W, H_inv
''',
        "updates every column, also the quantized ones": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) / H_inv[j, j]
    W -= delta * H_inv[j:j + 1, :]
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]
    return w_hat[:, 0], W, H_inv
''',
        "error pushed the wrong way": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    W, H_inv = W.clone(), H_inv.clone()
    w = W[:, j:j + 1]
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w_hat - w) / H_inv[j, j]
    W[:, j + 1:] -= delta * H_inv[j:j + 1, j + 1:]
    W[:, j:j + 1] = w_hat
    H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]
    return w_hat[:, 0], W, H_inv
''',
        "modifies W and H_inv in place": '''
def obs_column_step(W, H_inv, j, scale, zero_point, n_bits):
    w = W[:, j:j + 1].clone()
    w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
    delta = (w - w_hat) / H_inv[j, j]
    W[:, j:] -= delta * H_inv[j:j + 1, j:]
    H_inv -= H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j].clone()
    return w_hat[:, 0], W, H_inv
''',
    },
    "gptq_lazy": {
        "reference call": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    from course_lib import gptq
    return gptq.gptq_quantize(W, H, n_bits, group_size, block_size=block_size, damp_percent=damp_percent).W_hat.to(W.dtype)
''',
        "grids fitted on W as the block began (the original code's choice)": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W[:, j:j + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "grids fitted on the original weights": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W_original, W = W, W.clone()
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W_original[:, j:j + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "no lazy update of the later blocks": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
    return W_hat
''',
        "lazy update with the unscaled errors": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            Err1[:, i:i + 1] = w - w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "later blocks updated twice (at once and lazily)": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            W[:, i2:] -= delta * U[j:j + 1, i2:]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "Cholesky factor of H, not of H⁻¹": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    H = H.to(W.dtype)
    U = torch.linalg.cholesky(H + damp_percent * H.diagonal().mean() * torch.eye(H.shape[0], dtype=W.dtype), upper=True)
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "error divided by H_jj, not U_jj": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    H = H.to(W.dtype)
    U = inverse_hessian_factor(H, damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / H[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "damping added to every entry of H": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    H = H.to(W.dtype)
    U = inverse_hessian_factor(H + damp_percent * H.diagonal().mean(), 0.0)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "damp_percent ignored": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    W = W.clone()
    U = inverse_hessian_factor(H.to(W.dtype))[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
        "modifies the caller's W": '''
def gptq_lazy(W, H, n_bits, group_size, block_size=128, damp_percent=0.01):
    assert block_size % group_size == 0, "a group must not straddle two blocks"
    U = inverse_hessian_factor(H.to(W.dtype), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    n_in = W.shape[1]
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = gptq.fit_grid(W1[:, i:i + group_size], n_bits, symmetric=False)
            w = W1[:, i:i + 1]
            w_hat = dequantize(quantize_with(w, scale, zero_point, n_bits), scale, zero_point).to(W.dtype)
            W_hat[:, j:j + 1] = w_hat
            delta = (w - w_hat) / U[j, j]
            W1[:, i:] -= delta * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = delta
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat
''',
    },
}
