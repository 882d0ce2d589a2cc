"""Vector retrieval: RAM per node from the index layout, recall@k and query time from fitted curves.

A ``vector_db`` with an ``index_type`` (hnsw, ivf_flat, ivf_pq, flat, diskann) gets its figures
from here; one without keeps its stated ``query_time`` (today's behaviour). Every constant is
fitted on the ``fit`` rows of ``components/data/retrieval.csv`` (published ANN benchmarks, each
with its source) when first needed; the ``held_out`` rows are only compared with, and
:func:`accuracy_report` lists both.

The models (k = top_k, N = vectors per shard, d = dimensions, b = bytes per dimension):

* **RAM per node** (one shard's copy):
  hnsw ``N·(d·b + 2M·4)`` (vectors + level-0 links, Faiss wiki "Guidelines to choose an
  index"); ivf_flat ``N·(d·b + 8) + nlist·d·4``; ivf_pq ``N·(pq_bytes + 8) + nlist·d·4 + 256·d·4``
  (codes + 8-byte ids + centroids + PQ codebooks); flat ``N·d·b``; diskann ``N·pq_bytes`` in RAM
  and ``N·(d·b + 64·4)`` on SSD. A node needs 1.2× the index (the 20 % headroom of ScyllaDB's
  vector-search sizing guide).
* **Recall@k**: hnsw ``logit R = a + β·ln(ef/k) − γ·ln(N/1e6)``; ivf ``logit R = a' + β'·ln(nprobe/nlist)``,
  times a PQ ceiling that shrinks with fewer code bits per dimension and an int8 ceiling; flat is
  exact (times the int8 ceiling); diskann is its one published operating point (0.95). A
  design's own ``recall_measured`` wins over all of these.
* **Query time** (one query on one vCPU slot, idle): ``t0 + bytes compared / B``, with
  t0 = 0.5 ms (assumption: request handling of a Qdrant-class engine) and B fitted on the
  Qdrant row; bytes compared: hnsw ``M·(ef + log_M N)·d·b``, ivf ``nlist·d·4 + nprobe/nlist·N·code``,
  flat ``N·d·b``; diskann scales its published 3 ms at 1B by ``ln N / ln 1e9``. Shards answer
  in parallel and the query waits for the slowest: mean and p95 of the max of S lognormals
  whose p95/mean is Qdrant's 4.95/3.54.
* **Build** (hnsw, diskann): ``N·efc·M·d·b`` bytes compared over a per-CPU rate fitted on the
  Milvus 100M build, on ``concurrency`` vCPUs per shard; **re-embed**: vectors × tokens per
  vector over the embedder's tokens/s.

Usage::

    >>> from components.catalogue import VectorDB
    >>> from sim.quality.retrieval import retrieval_estimate
    >>> vdb = VectorDB(id="v", index_type="hnsw", vectors=20_000_000, dimensions=1024,
    ...                recall_target=0.95)
    >>> r = retrieval_estimate(vdb)
    >>> r.params["ef_search"], round(r.recall_at_k, 3)    # doctest: +SKIP
    (24, 0.952)

Bad input (a target the index cannot reach, an index no node holds) raises
:class:`RetrievalError` (a ``ValueError``) naming the component, the numbers and what would work.
"""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path
from statistics import NormalDist
from typing import Any

from sim.results import RetrievalEstimate

__all__ = [
    "RetrievalError",
    "retrieval_estimate",
    "query_time_of",
    "index_bytes",
    "hnsw_recall",
    "hnsw_ef_for",
    "ivf_recall",
    "accuracy_report",
    "constants",
    "BYTES_PER_DIM",
    "RAM_HEADROOM",
    "QUERY_OVERHEAD_MS",
    "MAX_EF",
]

DATA = Path(__file__).resolve().parents[2] / "components" / "data" / "retrieval.csv"
BYTES_PER_DIM = {"float32": 4, "float16": 2, "int8": 1}
RAM_HEADROOM = 1.2
"""A node needs 1.2× its index in RAM: ScyllaDB vector-search sizing guide (~20 % headroom for
queries, updates and the OS; https://cloud.docs.scylladb.com/master/vector-search/vector-search-sizing)."""
QUERY_OVERHEAD_MS = 0.5
"""Fixed cost per query on a Qdrant-class engine — assumption (pgvector's held-out rows imply
~9.5 ms: Postgres parses and plans every query)."""
MAX_EF = 32768
"""Largest ef_search engines accept ("ef has to be in the range [topk, 32768]", Milvus bootcamp)."""
P95_OVER_MEAN = 4.95 / 3.54
"""Spread of one node's query time: Qdrant single-node benchmark p95 4.95 ms / mean 3.54 ms."""
DISKANN_RAM_GRAPH_DEGREE = 64
"""Neighbours stored per point on SSD by a DiskANN-style index — assumption (Vamana's R)."""
IVF_ID_BYTES = 8  # Faiss stores 64-bit ids in its inverted lists
PQ_CODEBOOK_ENTRIES = 256  # 8-bit sub-quantizers


class RetrievalError(ValueError):
    """A vector index that cannot meet its target or fit its nodes; the message says what would."""


# --- fitting ------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@cache
def _rows() -> tuple[dict, ...]:
    with open(DATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row: dict[str, Any] = dict(r)
        for key in ("vectors", "dimensions", "k", "m", "ef", "nlist", "nprobe", "pq_bytes"):
            row[key] = int(r[key]) if r[key].strip() else None
        row["value"] = float(r["value"])
        out.append(row)
    return tuple(out)


def _row(rid: str) -> dict:
    for r in _rows():
        if r["id"] == rid:
            if r["split"] != "fit":
                raise AssertionError(f"retrieval.csv {rid} is {r['split']}; only fit rows are fitted")
            return r
    raise KeyError(rid)


@cache
def constants() -> dict[str, float]:
    """Every fitted constant, from the ``fit`` rows only (the row ids are in the comments)."""
    # γ: slope of logit(recall) against ln N at one fixed configuration (A4–A6, least squares).
    series = [_row(i) for i in ("A4", "A5", "A6")]
    xs = [math.log(r["vectors"] / 1e6) for r in series]
    ys = [_logit(r["value"]) for r in series]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    gamma = -sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    # β and a: the ef sweep at 100M (A1, A2), γ held.
    a1, a2 = _row("A1"), _row("A2")
    x1, x2 = math.log(a1["ef"] / a1["k"]), math.log(a2["ef"] / a2["k"])
    beta = (_logit(a2["value"]) - _logit(a1["value"])) / (x2 - x1)
    size = math.log(a1["vectors"] / 1e6)
    a = sum(_logit(r["value"]) - beta * x + gamma * size for r, x in ((a1, x1), (a2, x2))) / 2
    # IVF coverage: B1, B2 (same probes, lists 512 and 128).
    b1, b2 = _row("B1"), _row("B2")
    u1, u2 = math.log(b1["nprobe"] / b1["nlist"]), math.log(b2["nprobe"] / b2["nlist"])
    beta_ivf = (_logit(b2["value"]) - _logit(b1["value"])) / (u2 - u1)
    a_ivf = _logit(b1["value"]) - beta_ivf * u1
    # PQ ceiling at 4 bits per dimension (B5 vs B2) and the int8 ceiling (B6 vs B2).
    b5, b6 = _row("B5"), _row("B6")
    pq_miss_at_4_bits = 1 - b5["value"] / b2["value"]
    int8_ceiling = b6["value"] / b2["value"]
    # Bytes-compared rate B from the Qdrant row (L1) with the fixed cost held.
    l1 = _row("L1")
    scanned = _hnsw_bytes(l1["ef"], l1["m"], l1["vectors"], l1["dimensions"], BYTES_PER_DIM[l1["precision"]])
    rate = scanned / ((l1["value"] - QUERY_OVERHEAD_MS) / 1000)
    # Build rate per CPU from the Milvus 100M build (C1), 48 CPUs.
    c1 = _row("C1")
    build_bytes = c1["vectors"] * c1["ef"] * c1["m"] * c1["dimensions"] * BYTES_PER_DIM[c1["precision"]]
    build_rate = build_bytes / (c1["value"] * 48)
    d1, d2 = _row("D1"), _row("D2")
    return {
        "hnsw_a": a, "hnsw_beta": beta, "hnsw_gamma": gamma,
        "ivf_a": a_ivf, "ivf_beta": beta_ivf, "pq_miss_at_4_bits": pq_miss_at_4_bits,
        "int8_ceiling": int8_ceiling, "bytes_per_s": rate, "build_bytes_per_cpu_s": build_rate,
        "diskann_recall": d1["value"], "diskann_ms_at_1b": d2["value"],
    }


_SOURCES = {
    "recall": "components/data/retrieval.csv fit rows A1–A6 (hnsw), B1–B6 (ivf, PQ, int8), D1 (diskann)",
    "latency": "components/data/retrieval.csv L1 (Qdrant single-node benchmark) + 0.5 ms fixed cost (assumption)",
    "ram": "Faiss wiki layout (d·4 + 2M·4 bytes per HNSW vector; 8-byte ids per IVF entry) + 20 % headroom (ScyllaDB sizing guide)",
    "build": "components/data/retrieval.csv C1 (Milvus 100M HNSW build on 48 CPUs)",
    "reembed": "the design's embedder tokens/s (catalogue default: bge-large on 1× L4, 62k tokens/s, efficiency.csv)",
}


# --- the pieces -----------------------------------------------------------------------------------


def _hnsw_bytes(ef: int, m: int, n: float, d: int, b: float) -> float:
    """Bytes of vectors compared by one HNSW query: ~M neighbours per expanded candidate (ef of
    them on level 0) plus ~M per layer on the way down (log_M N layers) — assumption."""
    layers = math.log(max(n, 2)) / math.log(max(m, 2))
    return m * (ef + layers) * d * b


def _ceiling(precision: str) -> float:
    return constants()["int8_ceiling"] if precision == "int8" else 1.0


def hnsw_recall(ef: int, k: int, n: float, precision: str = "float32") -> float:
    """Recall@k of an HNSW search list of ``ef`` over ``n`` vectors (per shard)."""
    c = constants()
    x = c["hnsw_a"] + c["hnsw_beta"] * math.log(max(ef, k) / k) - c["hnsw_gamma"] * math.log(n / 1e6)
    return _sigmoid(x) * _ceiling(precision)


def hnsw_ef_for(recall: float, k: int, n: float, precision: str = "float32") -> int | None:
    """Smallest ef_search reaching ``recall`` (None when no ef ≤ MAX_EF does)."""
    c = constants()
    target = recall / _ceiling(precision)
    if target >= 1:
        return None
    x = (_logit(target) - c["hnsw_a"] + c["hnsw_gamma"] * math.log(n / 1e6)) / c["hnsw_beta"]
    ef = max(k, math.ceil(k * math.exp(x) - 1e-9))
    while hnsw_recall(ef, k, n, precision) < recall and ef <= MAX_EF:  # rounding at the boundary
        ef += 1
    return ef if ef <= MAX_EF else None


def _pq_ceiling(pq_bytes: int, d: int) -> float:
    bits = 8 * pq_bytes / d
    return max(0.0, 1 - constants()["pq_miss_at_4_bits"] * 4 / bits)


def ivf_recall(nprobe: int, nlist: int, precision: str = "float32", pq_bytes: int | None = None, d: int = 0) -> float:
    """Recall@k of an IVF search probing ``nprobe`` of ``nlist`` lists (PQ codes when pq_bytes)."""
    c = constants()
    cover = 1.0 if nprobe >= nlist else _sigmoid(c["ivf_a"] + c["ivf_beta"] * math.log(nprobe / nlist))
    ceiling = _pq_ceiling(pq_bytes, d) if pq_bytes else _ceiling(precision)
    return cover * ceiling


def _ivf_nprobe_for(recall: float, nlist: int, ceiling: float) -> int | None:
    c = constants()
    target = recall / ceiling
    if target >= 1:
        return None
    u = (_logit(target) - c["ivf_a"]) / c["ivf_beta"]
    nprobe = max(1, math.ceil(nlist * math.exp(u) - 1e-9))
    return min(nprobe, nlist)


def index_bytes(index_type: str, n: float, d: int, precision: str, m: int = 16, nlist: int = 0,
                pq_bytes: int = 64) -> tuple[float, float, str]:
    """(bytes in RAM, bytes on SSD, formula) of one copy of an index over ``n`` vectors."""
    b = BYTES_PER_DIM[precision]
    if index_type == "hnsw":
        per = d * b + 2 * m * 4
        return n * per, 0.0, f"{n:,.0f} × ({d} × {b} B + 2 × {m} links × 4 B) = {n:,.0f} × {per:,} B"
    if index_type == "ivf_flat":
        per = d * b + IVF_ID_BYTES
        fixed = nlist * d * 4
        return n * per + fixed, 0.0, f"{n:,.0f} × ({d} × {b} B + 8 B id) + {nlist:,} centroids × {d} × 4 B"
    if index_type == "ivf_pq":
        per = pq_bytes + IVF_ID_BYTES
        fixed = nlist * d * 4 + PQ_CODEBOOK_ENTRIES * d * 4
        return (n * per + fixed, 0.0,
                f"{n:,.0f} × ({pq_bytes} B code + 8 B id) + {nlist:,} centroids × {d} × 4 B + 256 × {d} × 4 B codebooks")
    if index_type == "flat":
        return n * d * b, 0.0, f"{n:,.0f} × {d} × {b} B"
    if index_type == "diskann":
        ssd = n * (d * b + DISKANN_RAM_GRAPH_DEGREE * 4)
        return n * pq_bytes, ssd, f"RAM {n:,.0f} × {pq_bytes} B PQ codes; SSD {n:,.0f} × ({d} × {b} B + 64 × 4 B graph)"
    raise ValueError(f"unknown index_type {index_type!r}")


def _max_of(mean_ms: float, shards: int) -> tuple[float, float]:
    """(mean, p95) of the slowest of ``shards`` iid lognormal shard times (midpoint rule on u)."""
    # Lognormal with the Qdrant p95/mean ratio: solve sigma from p95/mean = exp(1.645σ − σ²/2).
    z = NormalDist().inv_cdf(0.95)
    ratio = P95_OVER_MEAN
    sigma = z - math.sqrt(z * z - 2 * math.log(ratio))
    mu = math.log(mean_ms) - sigma * sigma / 2
    q = lambda u: math.exp(mu + sigma * NormalDist().inv_cdf(u))  # noqa: E731
    if shards == 1:
        return mean_ms, q(0.95)
    n = 400
    mean = sum(q(((i + 0.5) / n) ** (1 / shards)) for i in range(n)) / n
    return mean, q(0.95 ** (1 / shards))


# --- the estimate ---------------------------------------------------------------------------------


def _embed_rate(comp: Any, design: Any) -> tuple[float, int, str]:
    emb = next((c for c in getattr(design, "components", []) if c.kind == "embedder"), None) if design else None
    if emb is not None:
        reps = comp.reembed_replicas or emb.replicas
        return emb.tokens_per_s_per_replica, reps, f"'{emb.id}' at {emb.tokens_per_s_per_replica:,.0f} tokens/s per replica"
    from components.hardware import factor

    rate = factor("embedder_tokens_per_s_per_gpu_l4")
    return rate, comp.reembed_replicas or 1, f"no embedder in the design: bge-large on L4 at {rate:,.0f} tokens/s (efficiency.csv)"


def retrieval_estimate(comp: Any, design: Any = None) -> RetrievalEstimate:
    """Recall, query time, RAM per node, build and re-embed time of one ``vector_db``.

    Raises :class:`RetrievalError` when the index type has no ``index_type``, when
    ``recall_target`` is out of the index's reach, when ``ef_search``/``nprobe`` gives less
    than the target, or when one shard's index does not fit ``node_ram_gb``.
    """
    cid = f"vector_db '{comp.id}'"
    kind = comp.index_type
    if kind is None:
        raise RetrievalError(f"{cid}: no index_type; set hnsw, ivf_flat, ivf_pq, flat or diskann to model recall and RAM")
    c = constants()
    k, d, prec, shards = comp.top_k, comp.dimensions, comp.precision, comp.shards
    n = comp.vectors / shards
    b = BYTES_PER_DIM[prec]
    target = comp.recall_target
    lines: list[str] = []
    params: dict[str, float] = {}
    picked = False

    def unreachable(why: str, fix: str) -> RetrievalError:
        return RetrievalError(f"{cid}: recall_target {target:g} (recall@{k}) is out of reach for {kind}: {why}; {fix}")

    if kind == "hnsw":
        m = comp.hnsw_m
        ef = comp.ef_search
        if ef is None and target is not None:
            ef = hnsw_ef_for(target, k, n, prec)
            if ef is None:
                best = hnsw_recall(MAX_EF, k, n, prec)
                fix = ("use precision float32 (int8 caps recall at "
                       f"{c['int8_ceiling']:.3f})" if prec == "int8" and target >= c["int8_ceiling"] else
                       "use index_type flat (exact search) or a lower target")
                raise unreachable(f"even ef_search {MAX_EF:,} gives {best:.6f} at {n:,.0f} vectors per shard", fix)
            picked = True
        elif ef is None:
            ef = comp.ef_construction  # Qdrant searches with ef = ef_construct when none is set
        recall = hnsw_recall(ef, k, n, prec)
        params.update(hnsw_m=m, ef_search=ef, ef_construction=comp.ef_construction)
        scanned = _hnsw_bytes(ef, m, n, d, b)
        lines.append(f"recall@{k} = σ({c['hnsw_a']:.2f} + {c['hnsw_beta']:.2f}·ln({ef}/{k}) − {c['hnsw_gamma']:.3f}·ln({n:,.0f}/1e6))"
                     f"{' × int8 ceiling %.3f' % c['int8_ceiling'] if prec == 'int8' else ''} = {recall:.4f}"
                     f"{' (ef_search picked for the target)' if picked else ''}")
        lines.append(f"bytes compared = M {m} × (ef {ef} + log_M N {math.log(max(n, 2)) / math.log(m):.1f}) × {d} × {b} B = {scanned / 1e6:,.2f} MB")
    elif kind in ("ivf_flat", "ivf_pq"):
        nlist = comp.nlist or max(1, round(4 * math.sqrt(n)))
        pq = comp.pq_bytes if kind == "ivf_pq" else None
        if pq is not None and pq > d * b:
            raise RetrievalError(f"{cid}: pq_bytes {pq} is larger than the raw vector ({d} × {b} B); use ivf_flat or pq_bytes ≤ {d * b}")
        ceiling = _pq_ceiling(pq, d) if pq else _ceiling(prec)
        nprobe = comp.nprobe
        if nprobe is None and target is not None:
            nprobe = _ivf_nprobe_for(target, nlist, ceiling)
            if nprobe is None:
                fix = (f"raise pq_bytes (the ceiling grows with code bits per dimension) or use ivf_flat / hnsw"
                       if pq else "use index_type flat or precision float32")
                raise unreachable(f"its {'PQ' if pq else 'quantisation'} ceiling is {ceiling:.3f} even probing every list", fix)
            picked = True
        elif nprobe is None:
            nprobe = max(1, round(nlist / 64))  # assumption: probe ~1.5 % of the lists
        nprobe = min(nprobe, nlist)
        recall = ivf_recall(nprobe, nlist, prec, pq, d)
        params.update(nlist=nlist, nprobe=nprobe, **({"pq_bytes": pq} if pq else {}))
        code = pq if pq else d * b
        scanned = nlist * d * 4 + nprobe / nlist * n * code
        lines.append(f"recall@{k} = coverage σ({c['ivf_a']:.2f} + {c['ivf_beta']:.2f}·ln({nprobe}/{nlist})) × ceiling {ceiling:.3f} = {recall:.4f}"
                     f"{' (nprobe picked for the target)' if picked else ''}"
                     f"{'' if comp.nlist else f'; nlist = 4·√N = {nlist:,} (Faiss guideline)'}")
        lines.append(f"bytes compared = {nlist:,} centroids × {d} × 4 B + {nprobe}/{nlist} × {n:,.0f} × {code} B = {scanned / 1e6:,.2f} MB")
    elif kind == "flat":
        recall = _ceiling(prec)
        scanned = n * d * b
        if target is not None and target > recall:
            raise unreachable(f"int8 vectors cap it at {recall:.3f}", "use precision float32")
        lines.append(f"exact search: recall@{k} = {recall:.4f}; bytes compared = {n:,.0f} × {d} × {b} B = {scanned / 1e6:,.1f} MB")
    else:  # diskann
        recall = c["diskann_recall"]
        scanned = 0.0
        if target is not None and target > recall and comp.recall_measured is None:
            raise unreachable(f"the published DiskANN point is {recall:.2f} 1-recall@1 (SIFT1B, NeurIPS 2019)",
                              "use hnsw in RAM (more shards), or measure your index and set recall_measured")
        lines.append(f"recall = {recall:.2f}: DiskANN's published operating point (1-recall@1 on SIFT1B; not extrapolated)")
    if comp.recall_measured is not None:
        lines.append(f"recall_measured {comp.recall_measured:g} set in the design replaces the model's {recall:.4f}")
        recall = comp.recall_measured
    if target is not None and recall + 1e-12 < target:
        hint = ""
        if kind == "hnsw":
            need = hnsw_ef_for(target, k, n, prec)
            hint = f"; ef_search ≥ {need} reaches it" if need else "; no ef_search reaches it — use flat"
        elif kind in ("ivf_flat", "ivf_pq"):
            need = _ivf_nprobe_for(target, params["nlist"], ceiling)
            hint = f"; nprobe ≥ {need} reaches it" if need else "; no nprobe reaches it"
        raise RetrievalError(f"{cid}: {kind} as configured gives recall@{k} ≈ {recall:.4f} at {n:,.0f} vectors per shard, "
                             f"below recall_target {target:g}{hint}")

    # Query time of one shard, then the fan-out's slowest shard.
    if kind == "diskann":
        shard_ms = c["diskann_ms_at_1b"] * math.log(max(n, 2)) / math.log(1e9)
        lines.append(f"query = {c['diskann_ms_at_1b']:g} ms at 1B × ln N / ln 1e9 = {shard_ms:.2f} ms (SSD reads; published mean)")
    else:
        shard_ms = QUERY_OVERHEAD_MS + scanned / c["bytes_per_s"] * 1000
        lines.append(f"query = {QUERY_OVERHEAD_MS:g} ms + {scanned / 1e6:,.2f} MB / {c['bytes_per_s'] / 1e9:.2f} GB/s = {shard_ms:.3g} ms per shard")
    mean_ms, p95_ms = _max_of(shard_ms, shards)
    if shards > 1:
        lines.append(f"fan-out over {shards} shards: the slowest of {shards} → mean {mean_ms:.3g} ms, p95 {p95_ms:.3g} ms")

    ram, ssd, formula = index_bytes(kind, n, d, prec, comp.hnsw_m, params.get("nlist", 0), comp.pq_bytes)
    need_gb = ram * RAM_HEADROOM / 1e9
    lines.append(f"RAM per node = {formula} = {ram / 1e9:,.2f} GB (+20 % headroom = {need_gb:,.2f} GB) of {comp.node_ram_gb:g} GB")
    if need_gb > comp.node_ram_gb:
        alts = []
        min_shards = math.ceil(comp.vectors * ram / n * RAM_HEADROOM / 1e9 / comp.node_ram_gb) if n else 1
        alts.append(f"shards ≥ {max(min_shards, shards + 1)}")
        if kind in ("hnsw", "flat", "ivf_flat") and prec != "int8":
            r8, _, _ = index_bytes(kind, n, d, "int8", comp.hnsw_m, params.get("nlist", 0), comp.pq_bytes)
            alts.append(f"precision int8 ({r8 * RAM_HEADROOM / 1e9:,.1f} GB per node)")
        if kind != "ivf_pq":
            rpq, _, _ = index_bytes("ivf_pq", n, d, prec, nlist=max(1, round(4 * math.sqrt(n))), pq_bytes=comp.pq_bytes)
            alts.append(f"index_type ivf_pq ({rpq * RAM_HEADROOM / 1e9:,.1f} GB per node)")
        if kind != "diskann":
            alts.append("index_type diskann (PQ codes in RAM, vectors on SSD)")
        alts.append("a larger node_ram_gb")
        raise RetrievalError(f"{cid}: one shard's {kind} index needs {need_gb:,.1f} GB of RAM ({formula}, +20 % headroom) "
                             f"but a node has {comp.node_ram_gb:g} GB; would fit: {', or '.join(alts)}")

    # Build (graph indexes) and re-embed, as pipeline figures.
    vcpus = comp.concurrency
    build_h = 0.0
    if kind in ("hnsw", "diskann"):
        m_b = comp.hnsw_m if kind == "hnsw" else DISKANN_RAM_GRAPH_DEGREE // 2
        build_h = n * comp.ef_construction * m_b * d * b / (c["build_bytes_per_cpu_s"] * vcpus) / 3600
        lines.append(f"build = {n:,.0f} × efc {comp.ef_construction} × M {m_b} × {d} × {b} B / ({c['build_bytes_per_cpu_s'] / 1e9:.2f} GB/s × "
                     f"{vcpus} vCPUs) = {build_h:.2f} h per shard (shards build in parallel)")
    rate, reps, who = _embed_rate(comp, design)
    reembed_h = comp.vectors * comp.tokens_per_vector / (rate * reps) / 3600
    lines.append(f"re-embed = {comp.vectors:,} vectors × {comp.tokens_per_vector:g} tokens / ({reps} × {rate:,.0f} tokens/s; {who}) = {reembed_h:.2f} h")
    return RetrievalEstimate(
        index_type=kind, vectors=comp.vectors, vectors_per_shard=n, dimensions=d, precision=prec,
        shards=shards, replicas=comp.replicas, nodes=shards * comp.replicas, top_k=k, params=params,
        params_picked=picked, recall_at_k=recall, recall_target=target, shard_query_ms=shard_ms,
        query_ms_mean=mean_ms, query_ms_p95=p95_ms, ram_gb_per_node=ram / 1e9, ram_needed_gb_per_node=need_gb,
        node_ram_gb=comp.node_ram_gb, ssd_gb_per_node=ssd / 1e9, build_hours=build_h, reembed_hours=reembed_h,
        explanation=lines, sources=dict(_SOURCES),
    )


def query_time_of(comp: Any, design: Any = None):
    """The query-time distribution the twin and the engine use for a ``vector_db``.

    The stated ``query_time`` when the design sets it (a measurement wins) or when there is no
    ``index_type`` (today's catalogue default); else a lognormal with the model's fan-out mean and p95.
    """
    if comp.index_type is None or "query_time" in comp.model_fields_set:
        return comp.query_time
    from components.distributions import LogNormal

    r = retrieval_estimate(comp, design)
    return LogNormal(mean_ms=r.query_ms_mean, p95_ms=max(r.query_ms_p95, r.query_ms_mean * 1.0001))


# --- accuracy -----------------------------------------------------------------------------------


def _model_value(r: dict) -> float | None:
    prec = r["precision"]
    if r["metric"] == "recall":
        if r["index_type"] == "hnsw":
            return hnsw_recall(r["ef"], r["k"], r["vectors"], prec)
        if r["index_type"] in ("ivf_flat", "ivf_pq"):
            return ivf_recall(r["nprobe"], r["nlist"], prec, r["pq_bytes"], r["dimensions"])
        if r["index_type"] == "diskann":
            return constants()["diskann_recall"]
    if r["metric"] == "query_ms":
        b = BYTES_PER_DIM[prec]
        if r["index_type"] == "hnsw":
            scanned = _hnsw_bytes(r["ef"], r["m"], r["vectors"], r["dimensions"], b)
        elif r["index_type"] == "ivf_flat":
            scanned = r["nlist"] * r["dimensions"] * 4 + r["nprobe"] / r["nlist"] * r["vectors"] * r["dimensions"] * b
        else:
            return constants()["diskann_ms_at_1b"] * math.log(r["vectors"]) / math.log(1e9)
        return QUERY_OVERHEAD_MS + scanned / constants()["bytes_per_s"] * 1000
    if r["metric"] == "build_s":
        return (r["vectors"] * r["ef"] * r["m"] * r["dimensions"] * BYTES_PER_DIM[prec]
                / (constants()["build_bytes_per_cpu_s"] * 48))
    if r["metric"] == "index_gib":
        ram, _, _ = index_bytes("hnsw", r["vectors"], r["dimensions"], prec, r["m"])
        return ram / 2**30
    return None


def accuracy_report() -> list[dict]:
    """Every row of retrieval.csv with the model's value and the relative error, fit and held-out."""
    out = []
    for r in _rows():
        model = _model_value(r)
        err = None if model is None or r["value"] == 0 else model / r["value"] - 1
        out.append({"id": r["id"], "split": r["split"], "index_type": r["index_type"], "metric": r["metric"],
                    "published": r["value"], "model": model, "error": err, "source": r["source"]})
    return out
