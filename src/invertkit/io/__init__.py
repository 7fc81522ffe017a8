"""File input and output: images, latents, reports. The only place that touches image files."""
