"""Training methods that wrap any model (ADMS, DCPT, ...); above models, below train."""
