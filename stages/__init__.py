"""The maths of style transfer: VGG19 features, content/style/TV losses, optimizers, resampling."""
