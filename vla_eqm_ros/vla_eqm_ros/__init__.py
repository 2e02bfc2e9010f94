"""vla_eqm_ros: a pi0-style VLA with an Equilibrium-Matching action decoder, and its ROS 2 node.

The modules at this level form the ROS-free core (torch and numpy only); the rclpy shells live in
``vla_eqm_ros.nodes``. Importing this package must stay cheap and must never import rclpy.
"""

__version__ = "0.1.0"
