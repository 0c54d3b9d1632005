"""The DuckDB side of the statistics benchmark: the same quarter x département x kind table,
as a GROUP BY over the rows the Rust bench exported. Prints p50 and p99 in milliseconds."""

import statistics
import sys
import time

import duckdb

path, runs = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"CREATE TABLE reports AS SELECT * FROM read_csv_auto('{path}')")
query = """
WITH per_structure AS (
    SELECT siret, departement, kind,
           avg(etp_hundredths) AS etp, avg(employees) AS employees,
           sum(hours) AS hours, sum(hires) AS hires, sum(exits_total) AS exits_total,
           sum(exits_durable) + sum(exits_transition) + sum(exits_positive) AS exits_dynamic
    FROM reports WHERE period BETWEEN '2026-07' AND '2026-09'
    GROUP BY siret, departement, kind
)
SELECT departement, kind, count(*) AS structures, round(sum(etp)) AS etp, round(sum(employees)) AS employees,
       sum(hours) AS hours, sum(hires) AS hires, sum(exits_total) AS exits_total,
       max(hours) AS largest_contribution, sum(exits_dynamic) AS exits_dynamic
FROM per_structure GROUP BY departement, kind
"""
con.execute(query).fetchall()  # warm-up
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    rows = con.execute(query).fetchall()
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"{statistics.median(times):.3f} {times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]:.3f} {len(rows)}")
