"""Worker pools on one host never share a ROS domain: a shared domain lets one job's workers hear
another job's sim bridge, which fails (or passes) episodes for the wrong reason, silently."""

from __future__ import annotations

import subprocess
import sys

from vla_eqm_sim.workers import JobPool, claim_domain


def _domains(pool: JobPool, jobs: int) -> list[int]:
    seen: list[int] = []

    def on_event(event: dict) -> None:
        if event.get("event") == "job_done":
            seen.append(int(event["domain"]))

    assert pool.run(({"i": i} for i in range(jobs)), on_event) == []
    return seen


def test_two_pools_from_the_same_base_get_different_domains(tmp_path, monkeypatch):
    monkeypatch.setattr("vla_eqm_sim.workers.DOMAIN_LOCKS", tmp_path)
    worker = tmp_path / "echo_worker.py"
    worker.write_text(
        "import json, os, sys\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'event': 'job_done', 'domain': os.environ['ROS_DOMAIN_ID']}),"
        " flush=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with (JobPool("echo_worker", 2, base=150) as first,
          JobPool("echo_worker", 2, base=150) as second):
        a, b = set(_domains(first, 4)), set(_domains(second, 4))
        assert a == {151, 152}  # worker k: 1 + (base + k) mod 200
        assert not a & b and len(b) == 2, (a, b)
    # closed pools free their domains, and a lone claim gets the preferred one again
    domain, lock = claim_domain(151)
    assert domain == 151
    lock.close()


def test_a_domain_held_by_another_process_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr("vla_eqm_sim.workers.DOMAIN_LOCKS", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, fcntl; fh = open(sys.argv[1], 'w'); fcntl.flock(fh, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(tmp_path / "60.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        domain, lock = claim_domain(60)
        assert domain == 61
        lock.close()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    domain, lock = claim_domain(60)
    assert domain == 60
    lock.close()
