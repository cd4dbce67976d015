"""Observers: callbacks on the trainer's public surface (generate, draw_real, draw_noise, emit):
the doctor, TensorBoard, the live view, sample grids."""
