"""The retrieval model against hand-worked layouts and the published ANN curves it was fitted to.

Sources of the quoted points are the rows of components/data/retrieval.csv (ids in brackets).
"""

from __future__ import annotations

import math

import pytest

from components.catalogue import VectorDB
from components.distributions import LogNormal
from designs.model import Design
from sim.check import config_problems
from sim.quality.retrieval import (
    BYTES_PER_DIM,
    RetrievalError,
    accuracy_report,
    constants,
    hnsw_ef_for,
    hnsw_recall,
    index_bytes,
    query_time_of,
    retrieval_estimate,
)


def test_hnsw_ram_per_vector_hand_worked():
    # Faiss layout: d × 4 B + M × 2 × 4 B per vector. 1536-d float32, M = 16: 6,144 + 128 = 6,272 B.
    ram, ssd, formula = index_bytes("hnsw", 1_000_000, 1536, "float32", m=16)
    assert ram == 1_000_000 * 6272 and ssd == 0
    assert "6,272 B" in formula
    # int8 vectors: 1,536 + 128 = 1,664 B.
    assert index_bytes("hnsw", 1, 1536, "int8", m=16)[0] == 1664


def test_ivf_pq_ram_per_vector_hand_worked():
    # 96-byte PQ code + 8-byte id per vector; 4,096 centroids × 1,536 × 4 B; 256 × 1,536 × 4 B codebooks.
    ram, _, _ = index_bytes("ivf_pq", 1_000_000, 1536, "float32", nlist=4096, pq_bytes=96)
    assert ram == 1_000_000 * 104 + 4096 * 1536 * 4 + 256 * 1536 * 4
    assert ram / 1e6 == pytest.approx(104 + 25.166 + 1.573, abs=0.01)  # MB


def test_hnsw_layout_matches_the_milvus_100m_index_file():
    # [M1] Milvus bootcamp: SIFT 100M × 128, M = 16: "62GB vs 49 GB" (index file vs raw vectors).
    ram, _, _ = index_bytes("hnsw", 100_000_000, 128, "float32", m=16)
    assert ram / 2**30 == pytest.approx(62, rel=0.05)
    assert 100_000_000 * 128 * 4 / 2**30 == pytest.approx(49, rel=0.05)


def test_hnsw_recall_at_100m_on_the_published_curve():
    # [A1, A2, A3] Milvus bootcamp, SIFT 100M, M=16: ef 10 → recall@10 79.0 %, ef 100 → 99.0 %, ef 500 → 100.0 %.
    assert hnsw_recall(10, 10, 100_000_000) == pytest.approx(0.790, abs=0.002)
    assert hnsw_recall(100, 10, 100_000_000) == pytest.approx(0.990, abs=0.002)
    assert hnsw_recall(500, 10, 100_000_000) >= 0.998  # held out: reported as 100.0 %


def test_hnsw_recall_at_1m_held_out():
    # [A9] pgvector HNSW, 1M × 384 (gte-small), m=32, ef_search=100: accuracy 0.99 — not fitted.
    assert hnsw_recall(100, 10, 1_000_000) == pytest.approx(0.99, abs=0.006)
    # [A8] 1M × 1536, ef_search=250: 0.99.
    assert hnsw_recall(250, 10, 1_000_000) == pytest.approx(0.99, abs=0.01)


def test_larger_collections_need_a_longer_search_list():
    # At one ef the 100M index recalls less than the 1M one (A4–A6 slope), so the ef picked for
    # 0.99 grows with the collection: ef ∝ N^(γ/β).
    assert hnsw_recall(64, 10, 1e8) < hnsw_recall(64, 10, 1e6)
    ef_1m, ef_100m = hnsw_ef_for(0.99, 10, 1e6), hnsw_ef_for(0.99, 10, 1e8)
    c = constants()
    assert ef_100m / ef_1m == pytest.approx(100 ** (c["hnsw_gamma"] / c["hnsw_beta"]), rel=0.05)
    assert hnsw_recall(ef_100m, 10, 1e8) >= 0.99 > hnsw_recall(ef_100m - 1, 10, 1e8)


def test_query_time_reproduces_the_qdrant_anchor_and_the_held_out_slope():
    # [L1] Qdrant, 1M × 1536 int8, m=64, ef=512: 1238 QPS on 8 vCPUs → 8/1238 s = 6.46 ms per slot.
    v = VectorDB(id="v", index_type="hnsw", vectors=1_000_000, dimensions=1536, precision="int8",
                 hnsw_m=64, ef_search=512, node_ram_gb=64)
    assert retrieval_estimate(v).shard_query_ms == pytest.approx(8 / 1238 * 1000, rel=0.01)
    # [L2, L3] pgvector (held out): its slope over bytes compared is the model's rate within 15 %.
    def scanned(ef, m, d):
        return m * (ef + math.log(1e6) / math.log(m)) * d * 4
    slope = (14.3 - 10.1) / 1000 / (scanned(250, 24, 1536) - scanned(100, 32, 384))
    assert 1 / slope == pytest.approx(constants()["bytes_per_s"], rel=0.15)


def test_query_time_at_two_collection_sizes_at_one_recall_target():
    small = retrieval_estimate(VectorDB(id="s", index_type="hnsw", vectors=1_000_000, dimensions=768, recall_target=0.99))
    big = retrieval_estimate(VectorDB(id="b", index_type="hnsw", vectors=100_000_000, dimensions=768,
                                      recall_target=0.99, shards=16))  # 6.25M × 3,200 B × 1.2 = 24 GB per node
    assert big.params["ef_search"] > small.params["ef_search"]
    assert big.shard_query_ms > small.shard_query_ms
    assert big.query_ms_mean > big.shard_query_ms  # waits for the slowest of 16 shards
    assert small.recall_at_k >= 0.99 and big.recall_at_k >= 0.99


def test_fan_out_is_the_max_of_the_shards():
    one = retrieval_estimate(VectorDB(id="a", index_type="flat", vectors=1_000_000, dimensions=128))
    assert one.query_ms_mean == pytest.approx(one.shard_query_ms)
    four = retrieval_estimate(VectorDB(id="a", index_type="flat", vectors=4_000_000, dimensions=128, shards=4))
    # Same per-shard work; the p95 of the max of 4 is the 0.95^(1/4) quantile of one shard.
    shard = LogNormal(mean_ms=four.shard_query_ms, p95_ms=four.shard_query_ms * 4.95 / 3.54)
    assert four.query_ms_p95 == pytest.approx(shard.quantile(0.95 ** 0.25), rel=1e-3)
    assert four.nodes == 4


def test_unreachable_recall_target_says_what_would_work():
    v = VectorDB(id="v", index_type="hnsw", vectors=1_000_000, dimensions=768, precision="int8", recall_target=0.999)
    with pytest.raises(RetrievalError, match=r"vector_db 'v'.*out of reach.*float32"):
        retrieval_estimate(v)
    pq = VectorDB(id="p", index_type="ivf_pq", vectors=1_000_000, dimensions=1536, pq_bytes=96, recall_target=0.95)
    with pytest.raises(RetrievalError, match=r"PQ ceiling .* raise pq_bytes"):
        retrieval_estimate(pq)
    short = VectorDB(id="s", index_type="hnsw", vectors=1_000_000, dimensions=768, ef_search=10, recall_target=0.99)
    with pytest.raises(RetrievalError, match=r"below recall_target 0.99; ef_search ≥ \d+ reaches it"):
        retrieval_estimate(short)


def test_index_that_fits_no_node_is_a_located_config_error():
    d = Design.model_validate({
        "name": "t", "workload": {"requests_per_day": 100000},
        "components": [{"id": "vec", "kind": "vector_db", "replicas": 2, "index_type": "hnsw",
                        "vectors": 100_000_000, "dimensions": 1536}],
        "entry": "vec", "flow": [],
    })
    probs = config_problems(d)
    assert len(probs) == 1 and probs[0].path == "components[0]"
    msg = probs[0].message
    # 100M × 6,272 B = 627 GB (+20 %) against 32 GB: shards ≥ ⌈752.6 / 32⌉ = 24, or int8, or ivf_pq.
    assert "752.6 GB" in msg and "shards ≥ 24" in msg and "int8" in msg and "ivf_pq" in msg


def test_without_index_type_the_stated_query_time_stays():
    v = VectorDB(id="v")
    assert query_time_of(v) is v.query_time
    measured = VectorDB(id="m", index_type="hnsw", query_time={"dist": "fixed", "value_ms": 3})
    assert query_time_of(measured).expected() == 3


def test_fit_rows_are_reproduced_and_every_row_is_reported():
    rows = {r["id"]: r for r in accuracy_report()}
    for rid in ("A1", "A2", "B1", "B2", "B5", "B6", "L1", "C1", "D1"):
        assert rows[rid]["split"] == "fit" and abs(rows[rid]["error"]) < 1e-6, rid
    held = [r for r in rows.values() if r["split"] == "held_out"]
    assert len(held) >= 8 and all(r["model"] is not None for r in held)
    assert set(BYTES_PER_DIM) == {"float32", "float16", "int8"}
