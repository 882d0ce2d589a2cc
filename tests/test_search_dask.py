"""The distributed path: a Dask LocalCluster on loopback gives the same answer as the local path.

The cluster is started by the test (127.0.0.1 only, two single-threaded worker processes, no
dashboard) and closed after it; the search reaches it through its tcp:// address, exactly as
`sdw size --executor tcp://…` does.
"""

from __future__ import annotations

import pytest

from designs.io import load_design
from designs.space import SearchSpace
from sim import size

distributed = pytest.importorskip("distributed", reason="Dask distributed is a dev dependency (uv sync)")

SMALL = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100-SXM-80GB", "L40S-48GB"],
                                                           "precision": ["bf16", "fp8"], "max_batch": [128, 256],
                                                           "chunked_prefill_tokens": [None]}}})


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # Thread workers, but a real scheduler and client over TCP on loopback: forked worker
    # processes ("nannies") failed to start inside a busy pytest-xdist worker on CI.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1",
                      dashboard_address=None, protocol="tcp") as c:
        yield c


def test_dask_matches_local_for_the_same_seed(cluster):
    d = load_design("designs/library/llm_serving.yaml")
    local = size(d, space=SMALL, verify=0, workers=1)
    remote = size(d, space=SMALL, verify=0, executor=cluster.scheduler_address)
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert remote.status == "ok" and remote.winner is not None
    strip = {"wall_s": 0}
    assert remote.to_json() | strip == local.to_json() | strip


def _mmc(target_ms: float):
    from designs.model import Design

    return Design.model_validate({
        "name": "mmc", "workload": {"arrival_rps": 100},
        "components": [{"id": "svc", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 1000 / 12}}],
        "entry": "svc", "slo": {"latency_p95_ms": target_ms}})


def test_a_scheduler_that_does_not_answer_is_a_clear_error():
    from sim import ExecutorError
    from sim.search.executor import DaskExecutor

    with pytest.raises(ExecutorError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", timeout_s=1.0)
    with pytest.raises(ExecutorError, match="expected a Dask scheduler address"):
        size(_mmc(300), verify=0, executor="127.0.0.1:8786")


def test_dask_verification_matches_local_simulation(cluster):
    # Simulation on the workers: same seed, same candidates → the same simulated figures.
    local = size(_mmc(300), verify=2, seed=3, workers=1)
    remote = size(_mmc(300), verify=2, seed=3, executor=cluster.scheduler_address)
    assert local.winner.verified and local.simulations >= 1
    assert [c.model_dump() for c in remote.winner.sim] == [c.model_dump() for c in local.winner.sim]
    assert remote.winner.sim_replicas == local.winner.sim_replicas
