"""PPO over the RL head's decisions: GAE per episode, the clipped surrogate, a value loss.

The VLA is frozen, so a decision's input features are fixed once collected and an update only
runs the head's two small MLPs: thousands of decisions per second on one core. Rollouts, not
updates, are the cost of RL here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vla_eqm_ros.rl_head import RLHead


def gae(rewards: np.ndarray, values: np.ndarray, gamma: float, lam: float
        ) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns) of one episode that ends in a terminal state (no bootstrap)."""
    adv = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + values


@dataclass
class Batch:
    """Every decision of one iteration's rollouts, flattened across episodes."""

    features: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @classmethod
    def from_episodes(cls, episodes: list[dict[str, np.ndarray]], gamma: float, lam: float
                      ) -> Batch:
        """``episodes``: per episode, its decisions' features, actions, log_probs, values and
        rewards (arrays with one row per decision), as the rollout workers write them."""
        feats, acts, logp, advs, rets = [], [], [], [], []
        for ep in episodes:
            if len(ep["rewards"]) == 0:
                continue
            adv, ret = gae(np.asarray(ep["rewards"], np.float64),
                           np.asarray(ep["values"], np.float64), gamma, lam)
            feats.append(ep["features"])
            acts.append(ep["actions"])
            logp.append(ep["log_probs"])
            advs.append(adv)
            rets.append(ret)
        if not feats:
            raise ValueError("no decisions to learn from")
        return cls(*(torch.as_tensor(np.concatenate(x), dtype=torch.float32)
                     for x in (feats, acts, logp, advs, rets)))

    def __len__(self) -> int:
        return int(self.features.shape[0])


def ppo_update(head: RLHead, optimizer: torch.optim.Optimizer, batch: Batch, *, clip: float,
               epochs: int, minibatch: int, value_coef: float, entropy_coef: float,
               target_kl: float, max_grad_norm: float, generator: torch.Generator
               ) -> dict[str, float]:
    """A few epochs of clipped-surrogate PPO; stops early once the approximate KL to the
    rollout policy passes ``target_kl``. Returns the mean losses and the KL."""
    adv = batch.advantages
    if len(batch) > 1 and float(adv.std()) > 0:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
             "clip_fraction": 0.0, "updates": 0.0}
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(batch), generator=generator)
        kl_epoch = []
        for start in range(0, len(batch), minibatch):
            idx = order[start:start + minibatch]
            logp = head.log_prob(batch.features[idx], batch.actions[idx])
            ratio = (logp - batch.log_probs[idx]).exp()
            a = adv[idx]
            surrogate = torch.min(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
            policy_loss = -surrogate.mean()
            value_loss = (head.value(batch.features[idx]) - batch.returns[idx]).pow(2).mean()
            entropy = head.entropy()
            loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                kl = float(((ratio - 1) - (logp - batch.log_probs[idx])).mean())
                kl_epoch.append(kl)
                stats["clip_fraction"] += float(((ratio - 1).abs() > clip).float().mean())
            stats["policy_loss"] += float(policy_loss.detach())
            stats["value_loss"] += float(value_loss.detach())
            stats["entropy"] += float(entropy.detach())
            stats["approx_kl"] += kl
            stats["updates"] += 1
        if target_kl > 0 and float(np.mean(kl_epoch)) > target_kl:
            break
    head.eval()
    n = max(stats["updates"], 1.0)
    return {k: (v if k == "updates" else v / n) for k, v in stats.items()}
