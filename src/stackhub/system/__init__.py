"""The host itself: live metrics and a view onto the engine's containers, images and more."""
