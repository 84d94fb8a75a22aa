"""``mlops-airflow`` (or ``python -m mlops_airflow``): the checks a pipeline repository's CI runs.

    mlops-airflow validate [PATH ...] [--spec-only] [--data FILE]
                                                      pipeline YAMLs (files or folders; default
                                                      dags/pipelines): the import errors' messages;
                                                      --data: also against a sample of the data
    mlops-airflow dagbag [DAGS_FOLDER]                every DAG file of the folder imports (DagBag)
    mlops-airflow schema [-o FILE] [--check FILE]     the spec's JSON Schema (editors, CI)
    mlops-airflow new NAME --csv FILE --target COL    a first pipeline YAML from a CSV's header
    mlops-airflow run NAME --date YYYY-MM-DD          its training DAG for that day (airflow dags
                                                      test), the metadata database prepared first

Exit status: 0 when everything is valid, 1 when something is not (each problem on stderr, naming
the file, the field and the fix), 2 for a usage error. ``--spec-only`` checks the YAML against the
spec without importing Airflow (what the pre-commit hook runs); without it each file's DAGs are
also built, exactly as the DAG folder's loader builds them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_PIPELINES = Path("dags/pipelines")


def _yaml_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths or [str(DEFAULT_PIPELINES)]:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.y*ml") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def validate(paths: Sequence[str], *, spec_only: bool = False, data: str | None = None) -> int:
    """Check pipeline YAMLs; print one line per valid file and every problem of the others.

    :param data: a sample of the source data (CSV or Parquet): each valid YAML is also checked
        against it (:mod:`mlops_core.data.sample`), every mismatch reported.
    """
    from mlops_core.spec import SpecError, load_spec

    try:
        files = _yaml_files(paths)
    except FileNotFoundError as err:
        print(f"mlops-airflow validate: {err}", file=sys.stderr)
        return 2
    if not files:
        print(
            f"mlops-airflow validate: no *.yaml files in {' '.join(paths) or DEFAULT_PIPELINES}",
            file=sys.stderr,
        )
        return 1
    errors: list[str] = []
    if spec_only:
        for path in files:
            try:
                load_spec(path)
            except SpecError as err:
                errors.append(str(err))
        built = len(files) - len(errors)
        print(f"{built} of {len(files)} pipeline file(s) valid (spec only)")
    else:
        from mlops_airflow.loader import build_files

        dags, errors = build_files(files)
        print(f"{len(files) - len(errors)} of {len(files)} pipeline file(s) valid; {len(dags)} DAG(s) built")
    if data is not None:
        errors += _data_problems(files, data)
    for error in errors:
        print(error, file=sys.stderr)
    _warn(files)
    return 1 if errors else 0


def _data_problems(files: Sequence[Path], data: str) -> list[str]:
    """Each spec-valid file checked against the data sample (an invalid one is reported already)."""
    from mlops_core.data import sample
    from mlops_core.spec import SpecError, load_spec

    if not Path(data).is_file():
        return [f"--data {data}: no such file"]
    problems = []
    for path in files:
        try:
            spec = load_spec(path)
        except SpecError:
            continue
        problems += [f"{path}: {p}" for p in sample.check(spec, data)]
    return problems


def _warn(files: Sequence[Path]) -> None:
    """Print what is valid but probably not meant (``PipelineSpec.warnings``); the status stays 0."""
    from mlops_core.spec import SpecError, load_spec

    for path in files:
        try:
            found = load_spec(path).warnings()
        except SpecError:
            continue  # already reported
        for warning in found:
            print(f"WARNING {path}: {warning}", file=sys.stderr)


def dagbag(folder: str) -> int:
    """Import every DAG file under ``folder`` as Airflow's dag-processor would; non-zero on import errors."""
    from airflow.dag_processing.dagbag import DagBag

    if not Path(folder).is_dir():
        print(f"mlops-airflow dagbag: {folder}: no such folder", file=sys.stderr)
        return 2
    bag = DagBag(dag_folder=folder)
    print(f"{len(bag.dag_ids)} DAG(s) from {folder}; {len(bag.import_errors)} import error(s)")
    for file, error in sorted(bag.import_errors.items()):
        print(f"{file}:\n{error}", file=sys.stderr)
    return 1 if bag.import_errors or not bag.dag_ids else 0


def schema(output: str | None, check: str | None) -> int:
    """Write the JSON Schema (stdout or ``output``), or check that ``check`` holds exactly it."""
    from mlops_core.spec.schema import dumps

    text = dumps()
    if check:
        path = Path(check)
        if not path.is_file() or path.read_text() != text:
            print(
                f"{check} is not the spec's current JSON Schema; regenerate it: mlops-airflow schema -o {check}",
                file=sys.stderr,
            )
            return 1
        print(f"{check} matches the spec")
        return 0
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
    return 0


def new(name: str, csv_path: str, target: str, problem_type: str | None, out: str, force: bool) -> int:
    """Scaffold ``<out>/<name>.yaml`` from a CSV (never overwriting one unless ``force``)."""
    from mlops_core.scaffold import ScaffoldError, scaffold
    from mlops_core.spec import SpecError

    dest = Path(out) / f"{name}.yaml"
    if dest.exists() and not force:
        print(f"{dest} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    hints: list[str] = []
    try:
        text = scaffold(name, csv_path, target, problem_type=problem_type, hints=hints)
    except (ScaffoldError, SpecError) as err:
        print(f"mlops-airflow new: {err}", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    print(f"wrote {dest}: review the lines marked as guessed")
    print(_land(Path(csv_path), name))
    for hint in hints:
        print(f"hint: {hint}")
    print(f"next: mlops-airflow validate {dest} --data {csv_path}")
    print(f"then: mlops-airflow run {name} --date <a day of the data, YYYY-MM-DD>")
    return 0


def _land(csv: Path, name: str) -> str:
    """Put the CSV where the scaffold's ``source.uri`` points (``${MLOPS_LANDING}/<name>/<file>``).

    On a local landing zone the file is copied there (never over a different file of that name);
    on a cloud one, the line says where to upload it.
    """
    import filecmp
    import shutil
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    from mlops_core.base import settings

    landing = settings.landing_root()
    if not landing.startswith("file://"):
        return (
            f"source.uri is ${{MLOPS_LANDING}}/{name}/{csv.name}: upload {csv} to {landing}/{name}/{csv.name}"
        )
    target = Path(url2pathname(urlsplit(landing).path)) / name / csv.name
    if target.resolve() == csv.resolve():
        return f"{csv} is already where source.uri points"
    if target.exists():
        if filecmp.cmp(csv, target, shallow=False):
            return f"{target} (where source.uri points) already holds the same data"
        return (
            f"{target} (where source.uri points) exists and differs from {csv}: left as it is; "
            "copy the file there yourself if it should replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(csv, target)
    return f"copied {csv} to {target}, where source.uri (${{MLOPS_LANDING}}/{name}/{csv.name}) points"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops-airflow", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check pipeline YAMLs against the spec (and build their DAGs)")
    p.add_argument("paths", nargs="*", help=f"YAML files or folders (default: {DEFAULT_PIPELINES})")
    p.add_argument("--spec-only", action="store_true", help="check the spec only; do not import Airflow")
    p.add_argument("--data", metavar="FILE", help="also check each YAML against this sample of its data")
    p = sub.add_parser("dagbag", help="import every DAG file of a folder; fail on import errors")
    p.add_argument("folder", nargs="?", default="dags")
    p = sub.add_parser("schema", help="the pipeline spec's JSON Schema")
    p.add_argument("-o", "--output", help="write it to this file (default: stdout)")
    p.add_argument("--check", metavar="FILE", help="fail unless FILE holds exactly the current schema")
    p = sub.add_parser("new", help="scaffold a pipeline YAML from a CSV's header")
    p.add_argument("name", help="pipeline name (also the file name)")
    p.add_argument("--csv", required=True, help="a sample of the source data, with a header line")
    p.add_argument("--target", required=True, help="the label column")
    p.add_argument("--problem-type", choices=["binary", "multiclass", "regression"])
    p.add_argument("-o", "--out", default=str(DEFAULT_PIPELINES), help="folder to write NAME.yaml in")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p = sub.add_parser("run", help="run a pipeline's training DAG for one day (prepares the database first)")
    p.add_argument("name", help="pipeline name (its DAGs are NAME_training, NAME_monitoring)")
    p.add_argument("--date", required=True, help="the data day, YYYY-MM-DD")
    p.add_argument("--dag", default="training", choices=["training", "monitoring"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.paths, spec_only=args.spec_only, data=args.data)
    if args.command == "dagbag":
        return dagbag(args.folder)
    if args.command == "schema":
        return schema(args.output, args.check)
    if args.command == "run":
        from mlops_airflow.cli.run import run

        return run(args.name, args.date, dag=args.dag)
    return new(args.name, args.csv, args.target, args.problem_type, args.out, args.force)


if __name__ == "__main__":  # pragma: no cover - python -m mlops_airflow.cli.commands
    sys.exit(main())
