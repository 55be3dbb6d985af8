"""HRM-Agent in JAX/Flax: the model, replay and the jitted DQN trainer."""
