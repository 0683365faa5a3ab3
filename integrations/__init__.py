"""Thin adapters that fit `rabc` into existing trainers (LeRobot, openpi, plain PyTorch)."""
