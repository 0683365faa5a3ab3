"""Stage-Aware Reward Models (SARM). The model and its tooling arrive with the sarm issues."""
