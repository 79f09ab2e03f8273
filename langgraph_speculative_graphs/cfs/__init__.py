"""Lossy speculation: live scheduler tuning, the speculator acts now and the actor overwrites later."""
