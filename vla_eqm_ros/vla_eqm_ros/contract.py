"""The contract: which ROS topics feed which observation and action fields, and how to align them.

One YAML file serves live inference (the policy node), bag-to-dataset conversion and bag replay, so
training and serving read the robot through exactly the same mapping (DESIGN.md section 6; the idea
follows iblnkn/rosetta). The checkpoint stores its contract, so a node serving a checkpoint
subscribes to what the model was trained on.

Schema (every key is validated; errors name the offending key and value)::

    cameras:                       # one per camera, in model order
      - name: corner
        topic: /camera/corner/image_raw
        height: 96                 # the model's input size
        width: 96
        max_age: 0.2               # s; older frames count as stale
        transport: raw             # raw (sensor_msgs/Image) | compressed (CompressedImage, JPEG
                                   #   or PNG from image_transport: topic .../image_raw/compressed)
        resize: false              # true: scale other sizes to height x width (images.fit:
                                   #   area when shrinking, bilinear when enlarging); false: a
                                   #   frame of another size is rejected (nothing silently)
    state:                         # concatenated in this order into Observation.state
      - {topic: /joint_states, type: joint_state, names: [r_close, l_close],
         field: position, max_age: 0.2}          # field: position | velocity | effort
      - {topic: /ee_pose, type: pose, fields: [x, y, z], max_age: 0.2}
                                   # pose fields from x y z qx qy qz qw (PoseStamped or Pose)
    goal: {topic: /language_goal, default: ""}   # latched String; default until one arrives
    action:
      names: [dx, dy, dz, gripper] # joint names for joint_trajectory
      topic: /command
      type: float64_multi_array    # float64_multi_array | joint_trajectory
      kind: cartesian_delta        # cartesian_delta | cartesian_absolute | joint  (for plots, hold)
      low: [-1, -1, -1, -1]        # hard limits; never published outside them
      high: [1, 1, 1, 1]
      hold: [0, 0, 0, null]        # "hold position" action; null = repeat the last commanded value
      delta_scale: 0.01            # m per unit of a cartesian_delta action (Meta-World: 1/100)
    ee_pose_topic: /ee_pose        # optional: end-effector pose for drawing the plan (rviz)
    control_period: 0.05           # s between consecutive actions of a chunk
    alignment: {mode: asof, max_skew: 0.05}
                                   # asof: newest inputs with stamp <= tick, bounded skew
                                   # hold: newest inputs, skew not checked (zero-order hold)
                                   # drop: like asof, but a tick without a new reference frame
                                   #       yields no observation (bag conversion without repeats)
    episodes:                      # optional, bags only: how a recording becomes episodes
      split: bag                   # bag: one bag is one episode | marker: cut by a marker topic
                                   #   | gap: cut where the first input pauses longer than gap
      marker: /episode             # split: marker; std_msgs/Bool (true starts, false ends) or
                                   #   String (text starts, "" / end / stop / done ends)
      gap: 1.0                     # s; split: gap
      instruction: goal            # goal: the goal topic | marker: the String marker's text |
                                   #   metadata: the bag's custom_data "instruction" |
                                   #   sidecar: <bag>/episodes.yaml (docs/real_robot.md)

"Hold position" for ``joint_trajectory`` actions is a one-point trajectory at the measured joint
positions (the node builds it); ``action.hold`` applies to ``float64_multi_array`` actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla_eqm_ros.contract_fields import (  # noqa: F401 - the contract's public names
    ACTION_KINDS,
    ACTION_TYPES,
    ALIGNMENT_MODES,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    JOINT_FIELDS,
    JOINT_STATE_TYPE,
    POSE_FIELDS,
    POSE_TYPE,
    STATE_TYPES,
    STRING_TYPE,
    TRANSPORTS,
    ActionSpec,
    AlignmentSpec,
    CameraSpec,
    ContractError,
    EpisodeSpec,
    GoalSpec,
    StateSpec,
    _names,
    _need,
    _positive,
    _topic,
)


@dataclass(frozen=True)
class Contract:
    """Topics -> observation/action fields, limits, control period and time alignment."""

    cameras: tuple[CameraSpec, ...]
    state: tuple[StateSpec, ...]
    action: ActionSpec
    goal: GoalSpec = field(default_factory=GoalSpec)
    control_period: float = 0.05  # s
    alignment: AlignmentSpec = field(default_factory=AlignmentSpec)
    ee_pose_topic: str | None = None
    episodes: EpisodeSpec = field(default_factory=EpisodeSpec)

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ContractError(f"cameras: duplicate camera names {names}")
        topics = [c.topic for c in self.cameras] + [s.topic for s in self.state]
        if len(set(topics)) != len(topics):
            raise ContractError(f"each camera and state source needs its own topic, got {topics}")
        if not self.cameras and not self.state:
            raise ContractError("a contract needs at least one camera or state source")

    @property
    def state_dim(self) -> int:
        return sum(s.dim for s in self.state)

    @property
    def action_dim(self) -> int:
        return self.action.dim

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def state_labels(self) -> list[str]:
        return [label for s in self.state for label in s.labels]

    def input_topics(self) -> list[tuple[str, str]]:
        """(topic, ROS type) of every subscription the contract needs, goal last."""
        out = [(c.topic, c.ros_type) for c in self.cameras]
        out += [(s.topic, STATE_TYPES[s.type]) for s in self.state]
        out.append((self.goal.topic, STRING_TYPE))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        if not isinstance(d, Mapping):
            raise ContractError(f"contract: expected a mapping, got {type(d).__name__}")
        known = {"cameras", "state", "goal", "action", "control_period", "alignment",
                 "ee_pose_topic", "episodes"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"contract: unknown keys {unknown}; known keys {sorted(known)}")
        cams = d.get("cameras") or []
        states = d.get("state") or []
        if not isinstance(cams, Sequence) or not isinstance(states, Sequence):
            raise ContractError("contract: 'cameras' and 'state' must be lists")
        goal = d.get("goal") or {}
        ee = d.get("ee_pose_topic")
        return cls(
            cameras=tuple(CameraSpec.from_dict(c, f"cameras[{i}]") for i, c in enumerate(cams)),
            state=tuple(StateSpec.from_dict(s, f"state[{i}]") for i, s in enumerate(states)),
            action=ActionSpec.from_dict(_need(d, "action", "contract")),
            goal=GoalSpec(
                topic=_topic(goal.get("topic", "/language_goal"), "goal.topic"),
                default=str(goal.get("default", "")),
            ),
            control_period=_positive(d.get("control_period", 0.05), "control_period"),
            alignment=AlignmentSpec.from_dict(d.get("alignment") or {}),
            ee_pose_topic=None if ee is None else _topic(ee, "ee_pose_topic"),
            episodes=EpisodeSpec.from_dict(d.get("episodes") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cameras": [c.to_dict() for c in self.cameras],
            "state": [s.to_dict() for s in self.state],
            "goal": {"topic": self.goal.topic, "default": self.goal.default},
            "action": self.action.to_dict(),
            "control_period": self.control_period,
            "alignment": {"mode": self.alignment.mode, "max_skew": self.alignment.max_skew},
        }
        if self.ee_pose_topic is not None:
            out["ee_pose_topic"] = self.ee_pose_topic
        if not self.episodes.is_default:  # absent by default: old hashes stay valid
            out["episodes"] = self.episodes.to_dict()
        return out

    @classmethod
    def default_for(
        cls,
        cameras: Sequence[tuple[str, int, int]],
        state_names: Sequence[str],
        action_names: Sequence[str],
        control_period: float = 0.05,
    ) -> Contract:
        """The conventional contract for a checkpoint that stores none (DESIGN.md section 5).

        Cameras on /camera/<name>/image_raw, the state as joint positions on /joint_states, the
        action as a Float64MultiArray on /command limited to [-1, 1] (Meta-World's action box),
        holding with zero motion and the last value of a dimension named "gripper".
        """
        hold = [None if n == "gripper" else 0.0 for n in action_names]
        return cls.from_dict({
            "cameras": [{"name": n, "topic": f"/camera/{n}/image_raw", "height": h, "width": w}
                        for n, h, w in cameras],
            "state": [{"topic": "/joint_states", "type": "joint_state",
                       "names": list(state_names)}] if state_names else [],
            "action": {"names": list(action_names), "topic": "/command",
                       "type": "float64_multi_array", "kind": "cartesian_delta",
                       "low": [-1.0] * len(action_names), "high": [1.0] * len(action_names),
                       "hold": hold},
            "control_period": control_period,
        })

    @classmethod
    def from_yaml(cls, path: str | Path) -> Contract:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ContractError(f"cannot read contract {path}: {exc}") from exc
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
