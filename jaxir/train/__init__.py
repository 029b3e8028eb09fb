"""jaxir's one sharded training stack, shared by every model.

  sharding.py        mesh with a `data` axis; batch, replicated and FSDP parameter shardings
  optim.py           AdamW + warmup-cosine / multistep / constant schedules, clipping, EMA
  state.py           TrainState, created directly on the mesh, and its shardings
  step.py            jitted train step (rejects non-finite updates) and eval step
  checkpoint.py      Orbax manager: train state + Grain iterator, keep-last-N and best
  metric_writers.py  TensorBoard (tensorboardX) scalars and metrics.jsonl
  data.py            config.data -> Grain train iterator / eval dataset
  eval_loop.py       eval-set scores and the sample grid PNG
  loop.py            train(config, workdir), evaluate(config, path), load_inference_variables
"""
