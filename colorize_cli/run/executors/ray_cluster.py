"""Talking to the Ray cluster itself: importing Ray, connecting (or starting a local cluster),
how many workers fit, and asking it after the fact what happened (why a worker exited, whether
the head still answers). The driver (ray.py) decides; this only asks."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from colorize_cli.settings import RaySettings

INSTALL_HINT = 'the ray engine needs the "ray" extra: pip install "colorize-cli[ray]"'


class RayEngineError(RuntimeError):
    """The cluster could not be used: not installed, not reachable, no worker could start. (A
    cluster lost mid-run is not an error of the run: RayExecutor.lost says why it stopped.)"""


def import_ray() -> Any:
    """Ray, or a RayEngineError saying how to get it (never a bare ImportError)."""
    try:
        import ray  # noqa: PLC0415
    except ImportError as e:
        raise RayEngineError(f"{INSTALL_HINT} ({e})") from None
    return ray


def connect(ray: Any, rs: RaySettings) -> None:
    """Join the cluster at rs.address, or start a local one: no dashboard, no usage stats."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray ends a driver whose head (GCS) has not answered for this long (60 s by default), with
    # its own message and no end record: give the run's own watch (lost_after) time to end it.
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(int(rs.lost_after) + 60))
    # Python runs a signal's handler only when Ray's wait lets it (every 1 s by default), and two
    # signals before that run it once: a quick second Ctrl-C would be taken for the first.
    os.environ.setdefault("RAY_get_check_signal_interval_milliseconds", "20")
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if rs.address:
            ray.init(address=rs.address, **kwargs)
        else:  # "local": a new cluster, never one that another `ray start` left running
            ray.init(address="local", include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {rs.address}" if rs.address else "a local Ray cluster"
        hint = " (is `ray start --head` running?)" if rs.address else ""
        raise RayEngineError(f"cannot connect to {where}{hint}: {str(e).strip().splitlines()[0]}") from None


def worker_count(ray: Any, rs: RaySettings) -> tuple[int, int]:
    if rs.workers:
        return rs.workers
    res = ray.cluster_resources()
    fits = res.get("GPU", 0) / rs.gpus_per_worker if rs.gpus_per_worker else res.get("CPU", 1) / rs.cpus_per_worker
    n = max(1, int(fits + 1e-9))
    return n, n


def exit_type(ray: Any, worker_id: str, wait: float = 3.0) -> str | None:
    """How a dead worker exited, from the cluster's worker table: NODE_OUT_OF_MEMORY (Ray's
    memory monitor), SYSTEM_ERROR (a crash, or SIGKILL: Ray cannot tell them apart), ... None when
    not known within ``wait`` seconds (not reported yet, its node gone, the head gone, or Ray's
    internal API changed). Asked in a thread of its own: a call to a lost head must not block the run."""
    if not worker_id or head_answers(ray) is not True:
        return None
    answer: list[str | None] = []

    def ask() -> None:
        try:
            from ray._private import state  # noqa: PLC0415 - no public API says why a worker died
            from ray.core.generated import common_pb2, gcs_pb2  # noqa: PLC0415

            accessor = state.state._connect_and_get_accessor()
            deadline = time.monotonic() + wait
            while True:
                raw = accessor.get_worker_info(ray._raylet.WorkerID(bytes.fromhex(worker_id)))
                row = gcs_pb2.WorkerTableData.FromString(raw) if raw else None
                if row is not None and not row.is_alive:
                    answer.append(common_pb2.WorkerExitType.Name(row.exit_type))
                    return
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        except Exception:  # noqa: BLE001 - unknown, never fatal
            pass
        answer.append(None)

    asker = threading.Thread(target=ask, name="ray-exit-type", daemon=True)
    asker.start()
    asker.join(wait + 2.0)
    return answer[0] if answer else None


def head_answers(ray: Any) -> bool | None:
    """Whether the cluster's head (GCS) answers within 2 s; None when this Ray cannot be asked."""
    try:
        client = ray._private.worker.global_worker.gcs_client
    except Exception:  # noqa: BLE001 - Ray's internals moved
        return None
    try:
        client.check_alive([], timeout=2)
    except Exception:  # noqa: BLE001 - RpcError: it did not answer
        return False
    return True


def cause(err: BaseException) -> str:
    """One line for a worker's error: the underlying exception when Ray wraps one."""
    cause = getattr(err, "cause", None)
    if cause is None:  # Ray's own error: its message ends with the line that says what happened
        text = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        return text[-1] if text else type(err).__name__
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else 'no details'}"
