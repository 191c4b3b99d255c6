#!/usr/bin/env python3
"""Reference solvers for the route-solver benchmark (docs/performance.md, "Route solver").

Runs VROOM (PyPI `pyvroom`) and OR-Tools (PyPI `ortools`: routing with the guided local search
metaheuristic) on TSPLIB EUC_2D instances, each with the same time limit per instance as
`akig-tsp`, and prints one JSON object per line and solver:
{"solver", "instance", "n", "optimum", "length", "gap", "ms"}.

Both get the TSPLIB rounded Euclidean matrix (integers, as VROOM requires). The length printed
is recomputed here from the returned tour with that matrix, and the time is the wall time of
the solve call (model building excluded).

    pip install pyvroom ortools
    python3 ops/bench/tsp_reference.py [--data ../shared/data/tsplib] [--time-ms 200]
        [--min-nodes N] [--max-nodes N] [--solvers vroom,ortools] [instance ...]
"""

import argparse
import json
import math
import os
import sys
import time
from datetime import timedelta


def read_tsp(path):
    """Node coordinates of a TSPLIB EUC_2D file, in file order."""
    points, in_coords = [], False
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not in_coords:
                key, _, value = line.partition(":")
                if key.strip() == "EDGE_WEIGHT_TYPE" and value.strip() != "EUC_2D":
                    raise ValueError(f"{path}: only EUC_2D is supported")
                in_coords = line.startswith("NODE_COORD_SECTION")
                continue
            if not line or line == "EOF":
                continue
            _, x, y = line.split()
            points.append((float(x), float(y)))
    return points


def euc_2d(points):
    """TSPLIB EUC_2D: Euclidean distance rounded to the nearest integer, (int)(d + 0.5)."""
    return [[int(math.hypot(a[0] - b[0], a[1] - b[1]) + 0.5) for b in points] for a in points]


def tour_length(matrix, order):
    return sum(matrix[order[i]][order[(i + 1) % len(order)]] for i in range(len(order)))


def check_tour(order, n):
    if sorted(order) != list(range(n)):
        raise RuntimeError("the returned tour is not a permutation of the nodes")


def solve_vroom(matrix, time_ms):
    import numpy as np
    import vroom

    problem = vroom.Input()
    problem.set_durations_matrix(profile="car", matrix_input=np.array(matrix, dtype=np.uint32))
    problem.add_vehicle(vroom.Vehicle(id=0, start=0, end=0))
    problem.add_job([vroom.Job(id=i, location=i) for i in range(1, len(matrix))])
    started = time.perf_counter()
    solution = problem.solve(
        exploration_level=5, nb_threads=1, timeout=timedelta(milliseconds=time_ms)
    )
    elapsed = time.perf_counter() - started
    routes = solution.routes
    order = [0] + [int(i) for i in routes[routes["type"] == "job"]["id"]]
    return order, elapsed


def solve_ortools(matrix, time_ms):
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(matrix)
    manager = pywrapcp.RoutingIndexManager(n, 1, 0)
    routing = pywrapcp.RoutingModel(manager)
    transit = routing.RegisterTransitMatrix(matrix)
    routing.SetArcCostEvaluatorOfAllVehicles(transit)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(time_ms)
    started = time.perf_counter()
    solution = routing.SolveWithParameters(params)
    elapsed = time.perf_counter() - started
    if solution is None:
        raise RuntimeError("OR-Tools found no solution")
    order, index = [], routing.Start(0)
    while not routing.IsEnd(index):
        order.append(manager.IndexToNode(index))
        index = solution.Value(routing.NextVar(index))
    return order, elapsed


SOLVERS = {"vroom": solve_vroom, "ortools": solve_ortools}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instances", nargs="*")
    parser.add_argument("--data", default="../shared/data/tsplib")
    parser.add_argument("--time-ms", type=int, default=200)
    parser.add_argument("--min-nodes", type=int, default=0)
    parser.add_argument("--max-nodes", type=int, default=sys.maxsize)
    parser.add_argument("--solvers", default="vroom,ortools")
    args = parser.parse_args()

    try:
        with open(os.path.join(args.data, "optimal.json")) as f:
            optima = json.load(f)
    except FileNotFoundError:
        optima = {}
    names = args.instances or sorted(
        f[: -len(".tsp")] for f in os.listdir(args.data) if f.endswith(".tsp")
    )
    instances = []
    for name in names:
        points = read_tsp(os.path.join(args.data, name + ".tsp"))
        if args.min_nodes <= len(points) <= args.max_nodes:
            instances.append((len(points), name, points))
    instances.sort()

    for n, name, points in instances:
        matrix = euc_2d(points)
        optimum = optima.get(name)
        for solver in args.solvers.split(","):
            order, elapsed = SOLVERS[solver](matrix, args.time_ms)
            check_tour(order, n)
            length = tour_length(matrix, order)
            gap = 100.0 * (length / optimum - 1.0) if optimum else None
            print(
                json.dumps(
                    {
                        "solver": solver,
                        "instance": name,
                        "n": n,
                        "optimum": optimum,
                        "length": length,
                        "gap": gap,
                        "ms": elapsed * 1000.0,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
