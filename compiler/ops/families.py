"""Which module of this package defines each op.

The registry imports an op family the first time one of its ops is asked
for: building every family's parameter models costs more than a `netspec
check` of ResNet-152 spends on its analysis, and a spec uses a few
families.  Adding an op means adding its name here (registering a name
missing from this table is refused).
"""
FAMILIES: dict[str, tuple[str, ...]] = {
    "activation": ("relu", "sigmoid", "tanh", "relu6", "silu", "hardswish", "hardsigmoid", "erf", "softplus", "mish",
                   "one_minus", "leaky_relu", "softmax", "gelu"),
    "merge": ("add", "sub", "mul", "div", "scale", "matmul", "concat"),
    "attention": ("scaled_dot_product_attention", "multi_head_attention"),
    "channels": ("channel_shuffle", "chunk", "slice", "split"),
    "conv": ("conv2d", "conv1d"),
    "drop": ("stochastic_depth",),
    "layout": ("reshape", "unflatten", "permute", "transpose", "expand", "pad", "mean", "sum", "amax"),
    "linear": ("linear",),
    "norm": ("batchnorm2d", "batchnorm1d", "layer_norm", "group_norm", "instance_norm", "local_response_norm", "dropout"),
    "pool": ("max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool2d", "global_avg_pool"),
    "positions": ("narrow", "sinusoidal_table", "lookup"),
    "reshape": ("flatten", "identity"),
    "resize": ("conv_transpose2d", "upsample", "pixel_shuffle"),
    "sequence": ("embedding", "rnn", "lstm", "gru", "select", "last_step", "time_pool"),
    "scan": ("scan", "tuple_item"),
    "tensor": ("parameter",),
}
