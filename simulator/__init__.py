"""Fault simulator: scenario runs with ground truth, scale storms and a live generator."""

from simulator.generate import ScenarioRun, generate
from simulator.live import LiveSimulator
from simulator.scenarios import SCENARIOS, Scenario, get_scenario
from simulator.storm import generate_storm
from simulator.topology import SERVICES, default_graph

__all__ = [
    "SCENARIOS",
    "SERVICES",
    "LiveSimulator",
    "Scenario",
    "ScenarioRun",
    "default_graph",
    "generate",
    "generate_storm",
    "get_scenario",
]
