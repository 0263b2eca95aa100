"""Plausible wrong answers for notebook 01 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "absmax_quantize": {
        "reference call": '''
def absmax_quantize(x, n_bits=8):
    from course_lib import quantize
    return quantize.absmax_quantize(x, n_bits)
''',
        "truncates instead of rounding": '''
def absmax_quantize(x, n_bits=8):
    x = x.float()
    q_max = 2 ** (n_bits - 1) - 1
    scale = x.abs().max() / q_max
    if scale == 0:
        scale = torch.ones_like(scale)
    return (x / scale).clamp(-q_max, q_max).to(torch.int8), scale
''',
        "no guard for all zeros": '''
def absmax_quantize(x, n_bits=8):
    x = x.float()
    q_max = 2 ** (n_bits - 1) - 1
    scale = x.abs().max() / q_max
    return torch.round(x / scale).clamp(-q_max, q_max).to(torch.int8), scale
''',
        "divides by 2**(n_bits-1), not 2**(n_bits-1) - 1": '''
def absmax_quantize(x, n_bits=8):
    x = x.float()
    q_max = 2 ** (n_bits - 1)
    scale = x.abs().max() / q_max
    if scale == 0:
        scale = torch.ones_like(scale)
    return torch.round(x / scale).clamp(-q_max, q_max - 1).to(torch.int8), scale
''',
        "ignores n_bits": '''
def absmax_quantize(x, n_bits=8):
    x = x.float()
    scale = x.abs().max() / 127
    if scale == 0:
        scale = torch.ones_like(scale)
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale
''',
        "uses max(x), not max|x|": '''
def absmax_quantize(x, n_bits=8):
    x = x.float()
    q_max = 2 ** (n_bits - 1) - 1
    scale = x.max() / q_max
    if scale == 0:
        scale = torch.ones_like(scale)
    return torch.round(x / scale).clamp(-q_max, q_max).to(torch.int8), scale
''',
    },
    "absmax_dequantize": {
        "reference call": '''
def absmax_dequantize(q, scale):
    from course_lib import quantize
    return quantize.dequantize(q, scale)
''',
        "divides by the scale": '''
def absmax_dequantize(q, scale):
    return q.float() / scale
''',
        "returns float16": '''
def absmax_dequantize(q, scale):
    return (q.float() * scale).half()
''',
        "one scale for everything": '''
def absmax_dequantize(q, scale):
    return q.float() * float(scale.reshape(-1)[0])
''',
    },
    "sqnr_db": {
        "reference call": '''
def sqnr_db(x, x_hat):
    from course_lib import metrics
    return metrics.sqnr_db(x, x_hat)
''',
        "float32 sums": '''
def sqnr_db(x, x_hat):
    noise = float(((x - x_hat) ** 2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(float((x ** 2).sum()) / noise)
''',
        "20 log10 of the power ratio": '''
def sqnr_db(x, x_hat):
    x = x.double()
    noise = float(((x - x_hat.double()) ** 2).sum())
    if noise == 0:
        return math.inf
    return 20 * math.log10(float((x ** 2).sum()) / noise)
''',
        "noise over signal": '''
def sqnr_db(x, x_hat):
    x = x.double()
    noise = float(((x - x_hat.double()) ** 2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(noise / float((x ** 2).sum()))
''',
        "no case for an exact x_hat": '''
def sqnr_db(x, x_hat):
    x = x.double()
    return 10 * math.log10(float((x ** 2).sum()) / float(((x - x_hat.double()) ** 2).sum()))
''',
    },
    "fraction_rounded_to_zero": {
        "reference call": '''
def fraction_rounded_to_zero(x, n_bits=8):
    from course_lib import quantize
    return float((quantize.absmax_quantize(x, n_bits)[0] == 0).float().mean())
''',
        "counts exact zeros of x": '''
def fraction_rounded_to_zero(x, n_bits=8):
    return float((x == 0).float().mean())
''',
        "below a whole step, not half": '''
def fraction_rounded_to_zero(x, n_bits=8):
    scale = x.abs().max() / (2 ** (n_bits - 1) - 1)
    return float((x.abs() < scale).float().mean())
''',
        "a count, not a fraction": '''
def fraction_rounded_to_zero(x, n_bits=8):
    q, _ = absmax_quantize(x, n_bits)
    return float((q == 0).sum())
''',
        "returns a tensor": '''
def fraction_rounded_to_zero(x, n_bits=8):
    q, _ = absmax_quantize(x, n_bits)
    return (q == 0).float().mean()
''',
    },
}
