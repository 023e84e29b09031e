"""Generated gRPC code for protos/ (see service/protos_gen.py). Do not edit."""

from google.protobuf import descriptor_pool

# Private descriptor pool shared by the generated modules; see protos_gen.py.
POOL = descriptor_pool.DescriptorPool()
