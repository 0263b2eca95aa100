"""Plausible wrong answers for notebook 03 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "group_quantize": {
        "reference call": '''
def group_quantize(W, n_bits, group_size):
    from course_lib import quantize as cq
    t = cq.quantize(W, n_bits, group_size, symmetric=False)
    return t.q, t.scale, t.zero_point
''',
        "strided groups (every n_groups-th input)": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.reshape(out_features, group_size, in_features // group_size)  # [out, group_size, n_groups]
    scale, zero_point = zero_point_params(Wg, n_bits, dim=1)
    q = quantize_with(Wg, scale, zero_point, n_bits)
    return q.reshape(out_features, in_features), scale.squeeze(1), zero_point.squeeze(1)
''',
        "one grid per row, repeated for each group": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    n_groups = in_features // group_size
    scale, zero_point = zero_point_params(W, n_bits, dim=1)  # [out, 1]
    q = quantize_with(W, scale, zero_point, n_bits)
    return q, scale.expand(out_features, n_groups), zero_point.expand(out_features, n_groups)
''',
        "groups down the columns (across rows)": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.t().reshape(in_features, -1, group_size)  # groups of group_size consecutive outputs
    scale, zero_point = zero_point_params(Wg, n_bits, dim=-1)
    q = quantize_with(Wg, scale, zero_point, n_bits)
    return q.reshape(in_features, out_features).t(), scale.squeeze(-1).reshape(out_features, -1), \\
        zero_point.squeeze(-1).reshape(out_features, -1)
''',
        "scale and zero point keep the group axis": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.reshape(out_features, in_features // group_size, group_size)
    scale, zero_point = zero_point_params(Wg, n_bits, dim=-1)
    q = quantize_with(Wg, scale, zero_point, n_bits)
    return q.reshape(out_features, in_features), scale, zero_point
''',
        "ignores n_bits (always 4)": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.reshape(out_features, in_features // group_size, group_size)
    scale, zero_point = zero_point_params(Wg, 4, dim=-1)
    q = quantize_with(Wg, scale, zero_point, 4)
    return q.reshape(out_features, in_features), scale.squeeze(-1), zero_point.squeeze(-1)
''',
        "no ValueError (the reshape fails instead)": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    Wg = W.reshape(out_features, -1, group_size)
    scale, zero_point = zero_point_params(Wg, n_bits, dim=-1)
    q = quantize_with(Wg, scale, zero_point, n_bits)
    return q.reshape(out_features, in_features), scale.squeeze(-1), zero_point.squeeze(-1)
''',
        "own rounding: no clamp, float codes": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.reshape(out_features, in_features // group_size, group_size)
    scale, zero_point = zero_point_params(Wg, n_bits, dim=-1)
    q = torch.round(Wg / scale) + zero_point
    return q.reshape(out_features, in_features), scale.squeeze(-1), zero_point.squeeze(-1)
''',
        "own grid: min to max, not including 0.0": '''
def group_quantize(W, n_bits, group_size):
    out_features, in_features = W.shape
    if in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}")
    Wg = W.float().reshape(out_features, in_features // group_size, group_size)
    lo, hi = Wg.amin(-1, keepdim=True), Wg.amax(-1, keepdim=True)
    scale = ((hi - lo) / (2 ** n_bits - 1)).clamp(min=1e-8)
    zero_point = torch.round(-lo / scale).clamp(0, 2 ** n_bits - 1).to(torch.uint8)
    q = quantize_with(Wg, scale, zero_point, n_bits)
    return q.reshape(out_features, in_features), scale.squeeze(-1), zero_point.squeeze(-1)
''',
    },
    "group_dequantize": {
        "reference call": '''
def group_dequantize(q, scale, zero_point, group_size):
    from course_lib.quantize import QuantizedTensor
    return QuantizedTensor(q, scale, zero_point, 4, group_size, False).dequantize()
''',
        "subtracts in uint8 (wraps around)": '''
def group_dequantize(q, scale, zero_point, group_size):
    zero_point = zero_point.repeat_interleave(group_size, dim=1)  # [out, in]
    scale = scale.repeat_interleave(group_size, dim=1)            # [out, in]
    return ((q - zero_point) * scale).float()
''',
        "tiles the grids with repeat, not repeat_interleave": '''
def group_dequantize(q, scale, zero_point, group_size):
    n_groups = scale.shape[1]
    zero_point = zero_point.repeat(1, q.shape[1] // n_groups)  # [out, in]
    scale = scale.repeat(1, q.shape[1] // n_groups)            # [out, in]
    return (q.float() - zero_point.float()) * scale.float()
''',
        "forgets the zero point": '''
def group_dequantize(q, scale, zero_point, group_size):
    out_features, in_features = q.shape
    qg = q.reshape(out_features, in_features // group_size, group_size)
    return (qg.float() * scale[..., None].float()).reshape(out_features, in_features)
''',
        "divides by the scale": '''
def group_dequantize(q, scale, zero_point, group_size):
    out_features, in_features = q.shape
    qg = q.reshape(out_features, in_features // group_size, group_size)
    W_hat = (qg.float() - zero_point[..., None].float()) / scale[..., None].float()
    return W_hat.reshape(out_features, in_features)
''',
        "returns the scales' dtype": '''
def group_dequantize(q, scale, zero_point, group_size):
    out_features, in_features = q.shape
    qg = q.reshape(out_features, in_features // group_size, group_size)
    W_hat = (qg.to(scale.dtype) - zero_point[..., None].to(scale.dtype)) * scale[..., None]
    return W_hat.reshape(out_features, in_features)
''',
        "a reshape that mixes rows": '''
def group_dequantize(q, scale, zero_point, group_size):
    out_features, in_features = q.shape
    qg = q.reshape(in_features // group_size, out_features, group_size).transpose(0, 1)  # [out, n_groups, g]?
    W_hat = dequantize(qg, scale[..., None], zero_point[..., None])
    return W_hat.reshape(out_features, in_features)
''',
    },
    "pack_int4": {
        "reference call": '''
def pack_int4(q):
    from course_lib.packing import pack_int4 as library_pack_int4
    return library_pack_int4(q)
''',
        "even element in the high nibble": '''
def pack_int4(q):
    if q.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even to pack pairs, got {q.shape[-1]}")
    q = q.to(torch.uint8)
    return (q[..., 0::2] << 4) | q[..., 1::2]
''',
        "pairs the two halves of a row, not neighbours": '''
def pack_int4(q):
    n = q.shape[-1]
    if n % 2:
        raise ValueError(f"the last dimension must be even to pack pairs, got {n}")
    q = q.to(torch.uint8)
    return q[..., : n // 2] | (q[..., n // 2:] << 4)
''',
        "keeps the input's dtype": '''
def pack_int4(q):
    if q.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even to pack pairs, got {q.shape[-1]}")
    return q[..., 0::2] | (q[..., 1::2] << 4)
''',
        "flattens the tensor first": '''
def pack_int4(q):
    if q.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even to pack pairs, got {q.shape[-1]}")
    flat = q.to(torch.uint8).reshape(-1, 2)  # [numel / 2, 2]
    return flat[:, 0] | (flat[:, 1] << 4)
''',
        "no check for an odd length": '''
def pack_int4(q):
    q = q.to(torch.uint8)
    return q[..., 0::2] | (q[..., 1::2] << 4)
''',
        "pairs along the first dimension": '''
def pack_int4(q):
    if q.shape[0] % 2:
        raise ValueError(f"the first dimension must be even to pack pairs, got {q.shape[0]}")
    q = q.to(torch.uint8)
    return q[0::2] | (q[1::2] << 4)
''',
    },
    "unpack_int4": {
        "reference call": '''
def unpack_int4(packed):
    from course_lib import packing
    return packing.unpack_int4(packed)
''',
        "high nibble first": '''
def unpack_int4(packed):
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([high, low], dim=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
''',
        "all low nibbles, then all high ones": '''
def unpack_int4(packed):
    return torch.cat([packed & 0x0F, packed >> 4], dim=-1)
''',
        "no mask on the low nibble": '''
def unpack_int4(packed):
    low, high = packed, packed >> 4
    return torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
''',
        "masks the high nibble without shifting it": '''
def unpack_int4(packed):
    low, high = packed & 0x0F, packed & 0xF0
    return torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
''',
        "flattens every dimension": '''
def unpack_int4(packed):
    return torch.stack([packed & 0x0F, packed >> 4], dim=-1).reshape(-1)
''',
        "int64 codes": '''
def unpack_int4(packed):
    packed = packed.long()
    return torch.stack([packed % 16, packed // 16], dim=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
''',
        "stacks on the first dimension": '''
def unpack_int4(packed):
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=0).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
''',
    },
}
