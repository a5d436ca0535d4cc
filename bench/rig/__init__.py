"""The benchmark rig's Python side (bench/run is the command)."""
