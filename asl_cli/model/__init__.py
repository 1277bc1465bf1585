"""The 1st-place Conv1D + Transformer network (see docs/model.md)."""

from asl_cli.model.net import (KERAS_REFERENCE_PARAMS, ASLNet, build_model, count_parameters,
                               keras_parameter_count)

__all__ = ["ASLNet", "build_model", "count_parameters", "keras_parameter_count", "KERAS_REFERENCE_PARAMS"]
