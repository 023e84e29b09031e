"""Generated code for protos/model_config.proto (see service/protos_gen.py). Do not edit."""

from google.protobuf import descriptor_pool

# Private descriptor pool of every generated netspec module; see service/protos_gen.py.
POOL = descriptor_pool.DescriptorPool()
