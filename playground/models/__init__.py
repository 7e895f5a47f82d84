from playground.models.conv4 import Conv4
from playground.models.resnet12 import ResNet12

__all__ = ["Conv4", "ResNet12"]
