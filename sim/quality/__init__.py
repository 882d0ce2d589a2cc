"""Quality-and-cost models for compound AI systems: what an interviewer asks after capacity.

* ``retrieval`` — vector indexes (hnsw, ivf_flat, ivf_pq, flat, diskann): RAM per node from the
  layout, recall@k and query time from curves fitted to published ANN benchmarks
  (``components/data/retrieval.csv``, fit/held-out rows), shard fan-out, build and re-embed time,
  recall targets picked or checked.
* ``agents`` — agent loops as providers bill them: context growth per step, prompt-cache hits.
* ``training`` — fine-tuning honestly: LoRA MFU from LoRA rows, memory per GPU with
  activations and sharding, checkpoint/restart at a failure rate, GPU acquisition time.
* ``evalstats`` — evaluation as statistics: cases needed to detect a regression at a power
  (paired binary or score outcomes), what judge–human agreement does to the detectable effect,
  cost and time per eval run.

Outside ``sim/`` these are reached through the face (``from sim import retrieval_estimate``).
"""
