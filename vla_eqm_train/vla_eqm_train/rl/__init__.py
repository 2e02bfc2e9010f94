"""Online RL fine-tuning of a trained policy in simulation (``vla-eqm rl``, docs/rl.md).

ROS-free: rollouts run the simulator in process (``vla_eqm_sim.direct``) through the policy
node's executor; only a small head (``vla_eqm_ros.rl_head``) learns.
"""
