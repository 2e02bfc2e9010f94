"""The trainer, its config, the masked objective and the loss curves (ROS-free)."""
