"""Several processes (hosts) training one model: start-up, the global data mesh, per-process batches.

JAX's multi-controller model: every process runs the same program on its own local devices, and a
``jax.Array`` sharded over the global mesh spans all of them. Training (``dynaflow.train``) uses the
helpers here so that one code path serves one device, several local devices and several hosts:

* :func:`initialize` joins the processes (``jax.distributed.initialize``) before any computation;
* :func:`data_mesh` is a 1-D ``data`` mesh over every device of every process, ordered by process, so
  process ``p`` holds one contiguous block of each global batch;
* :func:`local_rows` is that block, :func:`global_batch` assembles the global array from each
  process's block (``jax.make_array_from_process_local_data``);
* :func:`to_host` reads a sharded array back whole (``process_allgather`` when it spans processes);
* :func:`agree` makes a host-side decision (the time budget) identical on every process, and
  :func:`gather` shows every process's small flags to all (a stop signal any one received), and
  :func:`share` gives every process process 0's string (the checkpoint ``--resume auto`` picked);
  :func:`compile_together` compiles a program in every process before its first run, so its collectives
  start together;
* :func:`is_main` says which process writes files (checkpoints, metrics, logs).

With one process every helper reduces to its single-host meaning, at no cost.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: list[int] | None = None,
) -> None:
    """Join a multi-process run. Call it once, first thing, in every process.

    With ``coordinator`` (``host:port`` of process 0), ``num_processes`` and ``process_id`` are needed.
    With none of them, JAX detects the layout from the cluster's environment (SLURM, Open MPI, mpi4py,
    Kubernetes, Cloud TPU)."""
    import jax
    from jax._src import xla_bridge

    if coordinator is not None and (num_processes is None or process_id is None):
        raise ValueError("--coordinator needs --num-processes and --process-id as well")
    if coordinator is None and (num_processes is not None or process_id is not None):
        raise ValueError("--num-processes / --process-id need --coordinator HOST:PORT (process 0's address)")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_processes}")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    if coordinator is not None and ":" not in coordinator:
        raise ValueError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    if xla_bridge.backends_are_initialized():
        raise ValueError(
            "joining a multi-process run (dynaflow.distributed.initialize) must run before any JAX "
            "computation in this process"
        )
    # CPU processes exchange gradients over Gloo (the default in recent JAX; set for older ones).
    # GPU and TPU backends use NCCL / ICI and ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
        )
    except ValueError as e:
        if coordinator is not None:
            raise
        raise ValueError(
            f"--distributed: no cluster layout found in the environment ({e}); JAX reads SLURM, Open MPI, "
            "mpi4py, Kubernetes and Cloud TPU jobs, otherwise give --coordinator, --num-processes and "
            "--process-id"
        ) from e


def is_main() -> bool:
    """True in the process that writes files (process 0; the only one when not distributed)."""
    import jax

    return jax.process_index() == 0


def data_mesh(batch: int | None = None):
    """A 1-D ``data`` mesh over every device of every process, ordered by (process, device id). With one
    process and a ``batch`` size, over the most of its devices that divide the batch
    (:func:`dynaflow.platform.data_devices`: a core per device need not divide every batch)."""
    import jax

    from dynaflow.platform import data_devices

    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    if jax.process_count() == 1:
        devices = data_devices(devices, batch)
    counts = dict(Counter(d.process_index for d in devices))
    if len(set(counts.values())) > 1:
        raise RuntimeError(f"every process needs the same number of devices, got {counts} (process: count)")
    # Auto axes: XLA propagates the batch sharding through the MJX scan (explicit sharding-in-types
    # would need every scatter inside MJX annotated).
    return jax.sharding.Mesh(np.array(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def local_rows(rows: np.ndarray) -> np.ndarray:
    """This process's contiguous block of a global batch (all of it with one process)."""
    import jax

    n = jax.process_count()
    if n == 1:
        return rows
    per = len(rows) // n
    if per * n != len(rows):
        raise ValueError(f"a batch of {len(rows)} cannot be split evenly over {n} processes")
    p = jax.process_index()
    return rows[p * per : (p + 1) * per]


def global_batch(local: np.ndarray, sharding, global_len: int):
    """The global array of ``global_len`` rows whose block on this process is ``local``."""
    import jax

    local = np.asarray(local, np.float32)
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    return jax.make_array_from_process_local_data(sharding, local, (global_len, *local.shape[1:]))


def to_host(x) -> np.ndarray:
    """A (possibly process-spanning) array, whole, on the host of every process."""
    import jax

    if jax.process_count() == 1 or x.is_fully_addressable or x.is_fully_replicated:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def agree(flag: bool) -> bool:
    """Process 0's value of ``flag`` on every process (decisions that must not diverge)."""
    import jax

    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def gather(values) -> np.ndarray:
    """Every process's small integer vector ``values``, as ``(processes, len(values))`` on every process
    (one collective; none with one process)."""
    import jax

    v = np.asarray(values, np.int32).reshape(-1)
    if jax.process_count() == 1:
        return v[None]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(v)).reshape(jax.process_count(), -1)


def share(key: str, value: str) -> str:
    """Process 0's ``value`` on every process (a string), through the coordinator's key-value store: no
    device collective, so it may be used before any computation and however long process 0 took."""
    import jax

    if jax.process_count() == 1:
        return value
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    if jax.process_index() == 0:
        client.key_value_set(f"dynaflow/{key}", value)
        return value
    return client.blocking_key_value_get(f"dynaflow/{key}", 30 * 60 * 1000)


_COMPILED_TOGETHER: dict[str, int] = {}


def compile_together(fn, *args, name: str, timeout_s: float = 3600.0) -> None:
    """Compile the jitted ``fn`` for ``args`` now, in every process, and wait until all have (through the
    coordinator, no device collective). No-op with one process.

    Why: the first run of a program with cross-process collectives sets up its Gloo context on a CPU, which
    gives the other processes 30 s to arrive. Processes can be a whole compile apart: measured on jax 0.10
    (CPU), process 0 read the train step from the persistent compilation cache in 4 s while process 1
    compiled it for 38 s (its cache keys differ), and a resumed two-process run failed with "Gloo context
    initialization failed". Compiled here, the first run starts in every process at the same moment (the
    call that follows reuses the executable)."""
    import jax

    if jax.process_count() == 1:
        return
    from jax._src import distributed as jax_distributed

    fn.lower(*args).compile()
    n = _COMPILED_TOGETHER[name] = _COMPILED_TOGETHER.get(name, 0) + 1
    jax_distributed.global_state.client.wait_at_barrier(
        f"dynaflow/compiled/{name}/{n}", int(timeout_s * 1000)
    )


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op with one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
