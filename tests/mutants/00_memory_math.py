"""Plausible wrong answers for notebook 00 (see tests/mutation.py). Each value is a whole answer cell."""

MUTANTS = {
    "weight_bytes": {
        "reference call": '''
def weight_bytes(n_params, n_bits):
    from course_lib import memory
    return memory.weight_bytes(n_params, n_bits)
''',
        "bytes per parameter by integer division": '''
def weight_bytes(n_params, n_bits):
    return n_params * (n_bits // 8)
''',
        "floor to whole bytes": '''
def weight_bytes(n_params, n_bits):
    return n_params * n_bits // 8
''',
        "rounds up to whole bytes": '''
def weight_bytes(n_params, n_bits):
    return math.ceil(n_params * n_bits / 8)
''',
        "bits, not bytes": '''
def weight_bytes(n_params, n_bits):
    return n_params * n_bits
''',
        "whole bit widths only": '''
def weight_bytes(n_params, n_bits):
    return n_params * int(n_bits) / 8
''',
        "in GB, not bytes": '''
def weight_bytes(n_params, n_bits):
    return n_params * n_bits / 8 / 1e9
''',
    },
    "grouped_bytes": {
        "reference call": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    from course_lib import memory
    return memory.grouped_bytes(n_params, n_bits, group_size, scale_bits, zero_bits)
''',
        "drops the partial group": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = n_params // group_size
    return n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits) / 8
''',
        "a fractional number of groups": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    return n_params * (n_bits + (scale_bits + zero_bits) / group_size) / 8
''',
        "round() instead of rounding up": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = round(n_params / group_size)
    return n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits) / 8
''',
        "one group too many when it divides evenly": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = n_params // group_size + 1
    return n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits) / 8
''',
        "forgets the zero point": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = math.ceil(n_params / group_size)
    return n_params * n_bits / 8 + n_groups * scale_bits / 8
''',
        "a zero point per weight": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = math.ceil(n_params / group_size)
    return n_params * (n_bits + zero_bits) / 8 + n_groups * scale_bits / 8
''',
        "overhead bits counted as bytes": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = math.ceil(n_params / group_size)
    return n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits)
''',
        "FP16 scale hard-coded": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = math.ceil(n_params / group_size)
    return n_params * n_bits / 8 + n_groups * (2 + zero_bits / 8)
''',
        "rounds the total up to whole bytes": '''
def grouped_bytes(n_params, n_bits, group_size, scale_bits=16, zero_bits=0):
    n_groups = math.ceil(n_params / group_size)
    return math.ceil(n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits) / 8)
''',
    },
    "kv_cache_bytes": {
        "reference call": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    from course_lib import memory
    return memory.kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size, bytes_per_element)
''',
        "keys only (no factor 2)": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    return n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_element
''',
        "ignores batch_size": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_element
''',
        "FP16 hard-coded": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * 2
''',
        "whole bytes per element": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * max(1, int(bytes_per_element))
''',
        "one layer only": '''
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_element=2):
    return 2 * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_element
''',
    },
    "model_bytes": {
        "reference call": '''
def model_bytes(module):
    from course_lib import memory
    return memory.memory_footprint(module)
''',
        "parameters only": '''
def model_bytes(module):
    seen, total = set(), 0
    for t in module.parameters():
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.numel() * t.element_size()
    return total
''',
        "shared storage counted twice": '''
def model_bytes(module):
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
''',
        "sums the state_dict": '''
def model_bytes(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())
''',
        "four bytes per element": '''
def model_bytes(module):
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.numel() * 4
    return total
''',
        "counts elements, not bytes": '''
def model_bytes(module):
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.numel()
    return total
''',
        "top-level tensors only": '''
def model_bytes(module):
    seen, total = set(), 0
    for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.numel() * t.element_size()
    return total
''',
        "dedups by object, not storage": '''
def model_bytes(module):
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total
''',
    },
    "perplexity_from_nll": {
        "reference call": '''
def perplexity_from_nll(nll_sum, n_predictions):
    from course_lib import evaluate
    return evaluate.perplexity_from_nll(nll_sum, n_predictions)
''',
        "exp of the sum, not the mean": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return math.exp(nll_sum)
''',
        "the mean NLL, no exp": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return nll_sum / n_predictions
''',
        "base 2": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return 2 ** (nll_sum / n_predictions)
''',
        "divides by the tokens, not the predictions": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return math.exp(nll_sum / (n_predictions + 1))
''',
        "float32 exp": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return float(torch.exp(torch.tensor(nll_sum / n_predictions)))
''',
        "returns a tensor": '''
def perplexity_from_nll(nll_sum, n_predictions):
    return torch.tensor(nll_sum / n_predictions, dtype=torch.float64).exp()
''',
    },
}
