"""Import: a one-million-row audience CSV (French headers, a few bad rows and
duplicates), through the same service as ``flask --app wsgi audience import``, into an
empty table. Baseline: PostgreSQL's COPY of the same rows' valid values into an empty
copy of the table (no checks, no merging). The import's peak memory (RSS) is reported:
the file is streamed, never read whole."""
from __future__ import annotations

import csv
import multiprocessing
import statistics
import time
from pathlib import Path

from bench import data
from bench.harness import Environment, Result

HEADER = ["Courriel", "Prénom", "Nom", "Promotion", "Parcours", "Langue"]


#: import and baseline alternate this many times; the medians are compared, so a slow
#: spell of the machine (it has them) falls on one round of each rather than on one side
ROUNDS = 3


def run(env: Environment, app, size: int) -> Result:
    folder = env.folder / "import"  # removed with the run's folder
    folder.mkdir()
    source, valid = _audience_file(folder / "audience.csv", size)
    megabytes = source.stat().st_size / 1e6
    copy_file = _valid_rows(source, folder / "valid.tsv")
    imports, copies = [], []
    for _round in range(ROUNDS):
        data.reset(env)
        env.psql("CHECKPOINT")  # the round before's writes are not this one's to flush
        imports.append(_timed_import(source))
        seconds, created, rejected, peak_kb = imports[-1]
        assert created == valid, (created, valid)
        env.psql("DROP TABLE IF EXISTS bench_copy")
        env.psql("CREATE TABLE bench_copy (LIKE stakeholders INCLUDING ALL)")
        env.psql("CHECKPOINT")
        copies.append(_timed_copy(env, copy_file))
    seconds, baseline = statistics.median(one[0] for one in imports), statistics.median(copies)
    peak_kb = max(one[3] for one in imports)
    rate, baseline_rate = size / seconds, size / baseline
    return Result(
        "Import", "rows/s", rate, baseline_rate,
        "COPY of the valid rows' values into an empty copy of the table (same indexes), no checks",
        "≥ 0.5 × baseline, memory bounded", rate >= 0.5 * baseline_rate,
        notes=[f"{size:,} lines ({megabytes:.0f} MB): {created:,} people created, {rejected:,} lines rejected "
               f"(bad addresses, formulas, duplicates); median of {ROUNDS} rounds, import and COPY alternating: "
               f"import {seconds:.1f} s ({', '.join(f'{one[0]:.1f}' for one in imports)}), "
               f"COPY {baseline:.1f} s ({', '.join(f'{one:.1f}' for one in copies)})",
               f"peak RSS of the importing process: {peak_kb / 1024:.0f} MB"])


def _timed_import(source: Path) -> tuple[float, int, int, int]:
    """The import, in a process of its own so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_import, args=(str(source), queue))
    process.start()
    result = queue.get(timeout=3600)
    process.join()
    return result


def _valid_rows(source: Path, copy_file: Path) -> Path:
    """The rows the import keeps, in COPY's text format."""
    with source.open(newline="", encoding="utf-8") as rows, copy_file.open("w") as out:
        reader = csv.reader(rows, delimiter=";")
        next(reader)
        seen = set()
        for email, first, last, cohort, programme, language in reader:
            if "@" not in email or email in seen:
                continue
            seen.add(email)
            attributes = '{"cohort": "%s", "programme": "%s"}' % (cohort, programme)
            out.write(f"alumnus\t{email}\t{first}\t{last}\t{language}\tEurope/Paris\t{attributes}\tnow\tnow\n")
    return copy_file


def _timed_copy(env: Environment, copy_file: Path) -> float:
    import psycopg

    with psycopg.connect(env.database_url) as conn, conn.cursor() as cursor:
        started = time.monotonic()
        with cursor.copy("COPY bench_copy (kind, email, first_name, last_name, locale, timezone, attributes, "
                         "created_at, updated_at) FROM STDIN") as copy, copy_file.open("rb") as tsv:
            while block := tsv.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.monotonic() - started


def _audience_file(path: Path, size: int) -> tuple[Path, int]:
    """``size`` lines: one in 50 a bad address, one in 100 a formula, one in 200 a duplicate."""
    valid = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADER)
        for n in range(size):
            email = f"alumna{n}@exemple.fr"
            if n % 50 == 7:
                email = f"alumna{n}-at-exemple.fr"
            elif n % 200 == 13:
                email = f"alumna{n - 1}@exemple.fr"  # the line before's address
            cohort = "=1+1" if n % 100 == 21 else str(2015 + n % 10)
            writer.writerow([email, "Zoé", f"Martin-{n}", cohort, f"Parcours {n % 12}", "fr" if n % 3 else "en"])
            valid += n % 50 != 7 and n % 200 != 13 and n % 100 != 21
    return path, valid


def _import(source: str, queue) -> None:
    import resource

    from survey import create_app
    from survey.audiences.services import import_audience
    from survey.extensions import db

    app = create_app()
    with app.app_context(), open(source, "rb") as stream:
        started = time.monotonic()
        report = import_audience(stream, "alumnus")
        db.session.commit()
        seconds = time.monotonic() - started
    rejected = getattr(report, "rejected_total", len(report.rejected))
    queue.put((seconds, report.created, rejected, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
