"""Pictures: detections and annotations drawn on images, prototype grids, loss curves, and
detections drawn on every frame of a video."""
