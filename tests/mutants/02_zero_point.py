"""Plausible wrong answers for notebook 02 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "uint_range": {
        "reference call": '''
def uint_range(n_bits):
    from course_lib import quantize
    return quantize.int_range(n_bits, symmetric=False)
''',
        "2**n_bits, one past the top": '''
def uint_range(n_bits):
    return 0, 2**n_bits
''',
        "the signed range": '''
def uint_range(n_bits):
    return -(2 ** (n_bits - 1)), 2 ** (n_bits - 1) - 1
''',
        "1 << n_bits - 1 (precedence)": '''
def uint_range(n_bits):
    return 0, 1 << n_bits - 1
''',
        "floats from math.pow": '''
import math

def uint_range(n_bits):
    return 0, math.pow(2, n_bits) - 1
''',
        "hard-coded 8 bits": '''
def uint_range(n_bits):
    return 0, 255
''',
    },
    "zero_point_params": {
        "reference call": '''
def zero_point_params(x, n_bits=8, dim=None):
    from course_lib import quantize
    return quantize.zero_point_params(x, n_bits, dim)
''',
        "no guard for all zeros": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "guards all zeros with `if scale == 0:` (one grid only)": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    if scale == 0:
        scale = torch.ones_like(scale)
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "eps floor on the scale (torch.finfo eps)": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / qmax).clamp(min=torch.finfo(torch.float32).eps)
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "range not stretched to include 0": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "zero point truncated by the uint8 cast": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = (-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "zero point rounded up (ceil)": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.ceil(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "zero point round(lo / scale), a negative float cast to uint8": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(lo / scale).to(torch.uint8)
    return scale, zero_point
''',
        "no keepdim": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim), x.amax(dim=dim)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "always one grid per row (dim=1)": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "scale in x's dtype": '''
def zero_point_params(x, n_bits=8, dim=None):
    _, qmax = uint_range(n_bits)
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point
''',
        "divides by 2**n_bits": '''
def zero_point_params(x, n_bits=8, dim=None):
    x = x.float()
    if dim is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / 2**n_bits
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, 2**n_bits - 1).to(torch.uint8)
    return scale, zero_point
''',
    },
    "zero_point_quantize": {
        "reference call": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    from course_lib import quantize
    return quantize.zero_point_quantize(x, n_bits, dim)
''',
        "library quantize_with on its own grid": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    from course_lib.quantize import quantize_with
    scale, zero_point = zero_point_params(x, n_bits, dim)
    return quantize_with(x, scale, zero_point, n_bits), scale, zero_point
''',
        "truncates instead of rounding": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    qmin, qmax = uint_range(n_bits)
    q = (torch.trunc(x.float() / scale) + zero_point.float()).clamp(qmin, qmax).to(torch.uint8)
    return q, scale, zero_point
''',
        "round(x / scale) cast to uint8 before adding the zero point": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    qmin, qmax = uint_range(n_bits)
    q = (torch.round(x.float() / scale).to(torch.uint8) + zero_point).clamp(qmin, qmax)
    return q, scale, zero_point
''',
        "no clamp": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    q = (torch.round(x.float() / scale) + zero_point.float()).to(torch.uint8)
    return q, scale, zero_point
''',
        "clamps to 0..255 whatever n_bits": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    q = (torch.round(x.float() / scale) + zero_point.float()).clamp(0, 255).to(torch.uint8)
    return q, scale, zero_point
''',
        "a float offset: round((x - min) / scale)": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    qmin, qmax = uint_range(n_bits)
    x = x.float()
    lo = (x.min() if dim is None else x.amin(dim=dim, keepdim=True)).clamp(max=0)
    q = torch.round((x - lo) / scale).clamp(qmin, qmax).to(torch.uint8)
    return q, scale, zero_point
''',
        "subtracts the zero point": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    qmin, qmax = uint_range(n_bits)
    q = (torch.round(x.float() / scale) - zero_point.float()).clamp(qmin, qmax).to(torch.uint8)
    return q, scale, zero_point
''',
        "forgets dim": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits)
    qmin, qmax = uint_range(n_bits)
    q = (torch.round(x.float() / scale) + zero_point.float()).clamp(qmin, qmax).to(torch.uint8)
    return q, scale, zero_point
''',
        "int8 codes": '''
def zero_point_quantize(x, n_bits=8, dim=None):
    scale, zero_point = zero_point_params(x, n_bits, dim)
    qmin, qmax = uint_range(n_bits)
    q = (torch.round(x.float() / scale) + zero_point.float()).clamp(qmin, qmax).to(torch.int8)
    return q, scale, zero_point
''',
    },
    "zero_point_dequantize": {
        "reference call": '''
def zero_point_dequantize(q, scale, zero_point):
    return dequantize(q, scale, zero_point)
''',
        "subtracts in uint8 (wraps around)": '''
def zero_point_dequantize(q, scale, zero_point):
    return (q - zero_point).float() * scale
''',
        "casts the codes to int8": '''
def zero_point_dequantize(q, scale, zero_point):
    return (q.to(torch.int8) - zero_point.to(torch.int8)).float() * scale
''',
        "adds the zero point": '''
def zero_point_dequantize(q, scale, zero_point):
    return (q.float() + zero_point.float()) * scale
''',
        "subtracts the zero point after scaling": '''
def zero_point_dequantize(q, scale, zero_point):
    return q.float() * scale - zero_point.float()
''',
        "forgets the zero point": '''
def zero_point_dequantize(q, scale, zero_point):
    return q.float() * scale
''',
        "one scale and zero point for everything": '''
def zero_point_dequantize(q, scale, zero_point):
    return (q.float() - float(zero_point.reshape(-1)[0])) * float(scale.reshape(-1)[0])
''',
        "returns float64": '''
def zero_point_dequantize(q, scale, zero_point):
    return (q.double() - zero_point.double()) * scale.double()
''',
    },
}
