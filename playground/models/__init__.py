from playground.models.conv4 import Conv4

__all__ = ["Conv4"]
