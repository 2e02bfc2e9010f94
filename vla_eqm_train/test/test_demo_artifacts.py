"""``vla-eqm demo`` artifacts: the recorder's bag read back with rosbags, the GIF, the contact sheet
and the plots on small synthetic runs, the boundary jump against the node's own ChunkQueue, the
``--param`` parsing, and one short closed-loop run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rosbags.highlevel import AnyReader

from vla_eqm_ros.execution import ChunkQueue, Plan
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_train.commands.demo import parse_params
from vla_eqm_train.demo import artifacts as art

PNG = b"\x89PNG\r\n\x1a\n"
CAMERA = "corner"
CAMERA_TOPIC = f"/camera/{CAMERA}/image_raw"
H, D = 8, 4


def _cdr(msgtype: str, **fields) -> bytes:
    store = make_typestore()
    return bytes(store.serialize_cdr(store.types[msgtype](**fields), msgtype))


def _header(stamp_ns: int):
    store = make_typestore()
    stamp = store.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                       nanosec=stamp_ns % 10**9)
    return store.types["std_msgs/msg/Header"](stamp=stamp, frame_id="")


def _image(stamp_ns: int, value: int) -> bytes:
    data = np.full((96, 96, 3), value, np.uint8)
    return _cdr(art.IMAGE, header=_header(stamp_ns), height=96, width=96, encoding="rgb8",
                is_bigendian=0, step=96 * 3, data=data.reshape(-1))


def _status(stamp_ns: int, step: int, done: bool) -> bytes:
    return _cdr(art.EPISODE_STATUS, header=_header(stamp_ns), task="t", variation=0, seed=1000,
                instruction="press", step=step, reward=0.0, episode_return=0.0, success=False,
                done=done)


def _decode(stamp_ns: int, iterations: int, warm: bool) -> bytes:
    trace = np.geomspace(1.0, 0.09, iterations).astype(np.float32)
    return _cdr(art.DECODER_STATUS, header=_header(stamp_ns), decoder="eqm", tau=0.1, k_max=50,
                step_size=0.05, momentum=0.3, deadline_ms=0.0, fm_steps=10,
                iterations=iterations, residual=float(trace[-1]), residual_trace=trace,
                stop_reason="threshold", warm_start="shifted", warm_start_fraction=0.5,
                warm_start_tail="hold", warm_start_used=warm, prefix_ms=10.0, solve_ms=20.0)


def _chunk(stamp_ns: int, rows: np.ndarray, first: int = 0) -> bytes:
    return _cdr(art.ACTION_CHUNK, header=_header(stamp_ns), action_names=["dx", "dy", "dz", "g"],
                horizon=rows.shape[0], action_dim=rows.shape[1], control_period=0.0125,
                data=rows.reshape(-1).astype(np.float64), first_step=first)


def _command(value: float) -> bytes:
    store = make_typestore()
    layout = store.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return _cdr("std_msgs/msg/Float64MultiArray", layout=layout,
                data=np.full(D, value, np.float64))


STEP_NS = 12_500_000


def synthetic_run(episodes: tuple[tuple[str, int], ...] = (("task-a", 9), ("task-b", 6))
                  ) -> tuple[art.RunRecorder, list[int]]:
    """What the demo's recorder holds after lockstep episodes: per observation an image, a status
    and a command; a decode and a chunk every 4 steps. Sim time runs on across episodes and the
    reset observation repeats the last stamp, as the bridge does."""
    topics = art.demo_topics(CAMERA_TOPIC, "/command", "std_msgs/msg/Float64MultiArray")
    rec = art.RunRecorder(topics)
    rng = np.random.default_rng(0)
    t = 1_000_000_000
    obs_counts = []
    for task, steps in episodes:
        ep = rec.begin_episode(task, 0)
        rec.add("/language_goal", "std_msgs/msg/String", _cdr("std_msgs/msg/String", data=task))
        for step in range(steps + 1):
            stamp = t + step * STEP_NS
            rec.add(CAMERA_TOPIC, art.IMAGE, _image(stamp, 10 * step + ep))
            rec.add("/episode_status", art.EPISODE_STATUS, _status(stamp, step, step == steps))
            if step % 4 == 0:
                rec.add("/policy_node/decoder_status", art.DECODER_STATUS,
                        _decode(stamp, 20 - step, step > 0))
                rec.add("/policy_node/action_chunk", art.ACTION_CHUNK,
                        _chunk(stamp, rng.normal(size=(H, D))))
            rec.add("/command", "std_msgs/msg/Float64MultiArray", _command(step))
        t += steps * STEP_NS  # the next reset observation shares this stamp
        obs_counts.append(steps + 1)
    rec.stop()
    rec.add(CAMERA_TOPIC, art.IMAGE, _image(t, 0))  # after stop: not recorded
    return rec, obs_counts


def test_the_recorder_tags_episodes_by_arrival_and_drops_what_comes_outside_them():
    rec, obs = synthetic_run()
    assert [e.task for e in rec.episodes] == ["task-a", "task-b"]
    assert [rec.count(CAMERA_TOPIC, i) for i in range(2)] == obs
    assert rec.totals()[CAMERA_TOPIC] == sum(obs)
    assert rec.totals()["/policy_node/decoder_status"] == 3 + 2


def test_the_bag_reads_back_with_rosbags_and_commands_carry_their_observations_time(tmp_path):
    rec, obs = synthetic_run()
    bag = art.write_bag(tmp_path / "bag", rec.messages(), {"settings": {"tau": 0.1}})
    assert (bag / "metadata.yaml").is_file() and (tmp_path / "bag.json").is_file()
    with AnyReader([bag], default_typestore=make_typestore()) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        times: dict[str, list[int]] = {}
        for conn, t, raw in reader.messages():
            times.setdefault(conn.topic, []).append(t)
            if conn.topic == "/policy_node/decoder_status":
                msg = reader.deserialize(raw, conn.msgtype)
                assert len(msg.residual_trace) == msg.iterations
    assert counts[CAMERA_TOPIC] == counts["/command"] == counts["/episode_status"] == sum(obs)
    assert counts["/policy_node/decoder_status"] == counts["/policy_node/action_chunk"] == 5
    assert counts["/language_goal"] == 2 and counts["/episode_info"] == 1
    # command i of an episode is filed at the time of observation i (deterministic, not arrival)
    assert sorted(times["/command"]) == sorted(times["/episode_status"])


def test_extract_finds_steps_and_the_gif_shows_one_frame_every_n_steps(tmp_path):
    rec, obs = synthetic_run()
    frames, decodes, chunks = art.extract(rec.messages(), CAMERA_TOPIC)
    assert [f.step for f in frames if f.episode == 1] == list(range(obs[1]))
    assert frames[3].image.shape == (96, 96, 3) and frames[3].image[0, 0, 0] == 30
    assert [d.iterations for d in decodes if d.episode == 0] == [20, 16, 12]
    assert [c.step for c in chunks] == [0, 4, 8, 0, 4]
    # the reset frame of episode 1 shares its stamp with episode 0's last: no decode leaks over
    first = next(f for f in frames if f.episode == 1)
    assert art.latest_decode(decodes, 1, first.stamp_ns).iterations == 20
    tasks = {e.index: e.task for e in rec.episodes}
    n = art.write_gif(tmp_path / "run.gif", frames, decodes, tasks, every=4, scale=3)
    # steps 0, 4, 8 and the last (9) of episode 0; 0, 4 and the last (6) of episode 1
    assert n == 7
    with Image.open(tmp_path / "run.gif") as gif:
        assert gif.n_frames == 7
        assert gif.size[0] == 96 * 3 and gif.size[1] > 96 * 3  # caption band below the image
    tiles = art.write_contact_sheet(tmp_path / "sheet.png", frames, decodes, tasks, columns=4,
                                    per_episode=4)
    assert tiles == 8
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.size[0] == 4 * 96 * 3


def test_the_plots_are_non_empty_pngs_with_the_run_in_their_caption(tmp_path):
    rec, _ = synthetic_run()
    _, decodes, _ = art.extract(rec.messages(), CAMERA_TOPIC)
    tasks = {e.index: e.task for e in rec.episodes}
    text = art.caption(2, 1000, decodes, "ckpt/default_eqm")
    assert "2 episode(s)" in text and "seed 1000" in text and "tau = 0.1" in text
    for plot in (art.plot_iterations, art.plot_residual_traces):
        path = plot(tmp_path / f"{plot.__name__}.png", decodes, tasks, text)
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000


def test_write_artifacts_returns_every_path(tmp_path):
    rec, _ = synthetic_run()
    out = art.write_artifacts(tmp_path / "run", rec, CAMERA_TOPIC, {"settings": {}}, seed=1000)
    for key in ("bag", "gif", "contact_sheet"):
        assert Path(out[key]).exists(), key
    assert set(out["plots"]) == {"iterations", "residual_traces"}
    assert all(Path(p).stat().st_size > 0 for p in out["plots"].values())


@pytest.mark.parametrize("delay", [0, 2])
def test_boundary_jumps_from_published_chunks_match_the_nodes_chunk_queue(delay):
    """Ground truth: the node's ChunkQueue, driven tick by tick (sync: delay 0; async-like: each
    plan is installed ``delay`` ticks after its observation)."""
    rng = np.random.default_rng(1)
    queue, expected, chunks = ChunkQueue(), [], []
    pending: list[Plan] = []
    for tick in range(40):
        if tick == 20:  # a new episode: the node clears its queue on reset
            queue.clear()
            pending.clear()
        episode = int(tick >= 20)
        if tick % 4 == 0:
            pending.append(Plan(chunk=rng.normal(size=(H, D)), produced_tick=tick, record=None))
        if pending and tick - pending[0].produced_tick >= delay:
            plan = pending.pop(0)
            jump = queue.install(plan, tick)
            if jump is not None:
                expected.append(jump)
            chunks.append(art.RecordedChunk(episode, plan.produced_tick, tick - plan.produced_tick,
                                    plan.chunk))
        queue.pop()
    got = art.boundary_jumps(chunks)
    assert len(got) == len(expected) == 8
    np.testing.assert_allclose(got, expected)


def test_param_overrides_parse_like_bringup_and_unknown_names_are_refused():
    assert parse_params(["tau:=0.05", "k_max:=20", "warm_start:=copy", "tau:=1"]) == {
        "tau": 1.0, "k_max": 20, "warm_start": "copy"}
    assert isinstance(parse_params(["step_size:=1"])["step_size"], float)
    assert parse_params(["execution:=sync"], execution="async") == {"execution": "async"}
    with pytest.raises(SystemExit, match="not a policy_node parameter"):
        parse_params(["tua:=0.1"])
    with pytest.raises(SystemExit, match="set by the demo"):
        parse_params(["trigger:=timer"])
    with pytest.raises(SystemExit, match="NAME:=VALUE"):
        parse_params(["tau=0.1"])


def test_one_short_demo_episode_writes_the_bag_gif_plots_and_summary(tmp_path, capsys):
    """The real loop: sim bridge + policy node + recorder over loopback DDS, one short episode."""
    from vla_eqm_train.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--tasks", "button-press-topdown-v3", "--episodes", "1",
               "--max-steps", "20", "--out", str(out), "--no-progress",
               "--param", "k_max:=20", "--execution", "sync"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("success_rate", "episodes", "iters_p50", "iters_p95", "decode_ms_p50",
                "decode_ms_p99", "warm_start_iteration_saving", "boundary_jump_p50",
                "boundary_jump_max", "holds", "dropped_cycles", "settings", "artifacts"):
        assert key in summary, key
    assert summary["episodes"] == 1 and summary["iters_p95"] <= 20
    assert summary["settings"]["k_max"] == 20 and summary["settings"]["execution"] == "sync"
    assert summary["boundary_jump_max"] is not None
    arts = summary["artifacts"]
    with AnyReader([Path(arts["bag"])], default_typestore=make_typestore()) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    steps = 20  # the bridge ends at the step limit (or earlier on success)
    assert 1 <= counts["/policy_node/decoder_status"] <= steps // 4 + 1
    assert counts["/command"] == counts["/episode_status"] == counts[CAMERA_TOPIC]
    assert counts["/policy_node/action_chunk"] == counts["/policy_node/decoder_status"]
    with Image.open(arts["gif"]) as gif:
        assert gif.n_frames >= 2
    assert Path(arts["contact_sheet"]).read_bytes().startswith(PNG)
    for path in arts["plots"].values():
        assert Path(path).read_bytes().startswith(PNG)
