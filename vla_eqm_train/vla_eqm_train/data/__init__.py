"""Bags to episodes to a training cache (ROS-free: no rclpy import)."""
