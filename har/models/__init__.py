"""Models: every one maps a window ``[B, 1, T, C]`` to logits ``[B, num_classes]``.

``create_model(name, window_steps, channels, num_classes, **hparams)`` is the one way to build
one; importing this package registers ``resnet``, ``cnn`` and ``deepconvlstm``.
"""

from har.models import deepconvlstm, resnet  # noqa: F401  (register the builders)
from har.models.profile import count_macs, count_parameters, describe_models
from har.models.registry import (
                                 create_model,
                                 list_models,
                                 model_config,
                                 model_description,
                                 register_model,
)

__all__ = ["create_model", "list_models", "model_config", "model_description", "register_model",
           "count_macs", "count_parameters", "describe_models"]
