"""Live replay of bags through DDS into the real policy node (rclpy)."""
