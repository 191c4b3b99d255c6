#!/usr/bin/env python3
"""VROOM (pyvroom) on the same assignment as akig's mission planner (ops/bench/missions.sh).

Reads the JSON of akig-plan-bench on stdin: per site, the agents akig gave missions there
(start point, and as capacity the number of visits akig gave them there) and the tenants akig
planned there. Gives VROOM, per site, the same agents as vehicles (start at the
same point, no end: open routes, capacity in visits) and the same tenants as jobs (one visit
each), with the same great-circle distances in whole metres (haversine, mean Earth radius
6,371,008.8 m) as the cost, and prints akig's and VROOM's total route length and time side by
side. VROOM is free to unbalance the agents; akig is not (balance within one visit).
"""
import json
import math
import sys
import time

import vroom

R = 6_371_008.8


def haversine(a, b):
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return int(round(2 * R * math.asin(math.sqrt(h))))


def solve(site, threads, exploration):
    points = [tuple(a["start"]) for a in site["agents"]] + [tuple(j) for j in site["jobs"]]
    n = len(points)
    matrix = [[haversine(points[i], points[j]) for j in range(n)] for i in range(n)]
    problem = vroom.Input()
    problem.set_durations_matrix(profile="car", matrix_input=matrix)
    vehicles = [
        vroom.Vehicle(i + 1, start=i, capacity=[a["capacity"]], profile="car")
        for i, a in enumerate(site["agents"])
    ]
    problem.add_vehicle(vehicles)
    k = len(site["agents"])
    problem.add_job([vroom.Job(1000 + j, location=k + j, delivery=[1]) for j in range(len(site["jobs"]))])
    solution = problem.solve(exploration_level=exploration, nb_threads=threads)
    routes = solution.routes
    jobs = routes[routes["type"] == "job"]
    loads = jobs.groupby("vehicle_id").size().reindex([v.id for v in vehicles], fill_value=0)
    return solution.summary.cost, len(site["jobs"]) - len(jobs), int(loads.max() - loads.min())



def main():
    plan = json.load(sys.stdin)
    exploration = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.perf_counter()
    cost = unassigned = worst = 0
    for site in plan["sites"]:
        if not site["jobs"]:
            continue
        c, u, b = solve(site, threads, exploration)
        cost += c
        unassigned += u
        worst = max(worst, b)
    secs = time.perf_counter() - started
    print(f"agents {plan['agents']}, sites {len(plan['sites'])}, candidates {plan['candidates']}, "
          f"planned {plan['planned']}, left for lack of capacity {plan['unassigned']}")
    print(f"akig:  dry run {plan['dry_run_secs']:.3f} s, stored run {plan['stored_run_secs']:.3f} s, "
          f"route length {plan['distance_m'] / 1000:.1f} km, worst balance per site {plan['worst_balance']}")
    print(f"VROOM: {secs:.3f} s (exploration {exploration}, {threads} thread(s), matrix included), "
          f"route length {cost / 1000:.1f} km, worst balance per site {worst}, jobs left {unassigned}")
    if cost:
        print(f"akig / VROOM route length: {plan['distance_m'] / cost:.3f}")


if __name__ == "__main__":
    main()
