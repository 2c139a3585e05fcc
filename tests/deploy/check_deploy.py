#!/usr/bin/env python3
"""Checks the operator files in deploy/ against what dermad exports. Standard library only.

  check_deploy.py dashboard DASHBOARD.json DATASOURCE.yml METRICS_SOURCE.cc...
      The dashboard is JSON; every panel, query and template variable uses the provisioned
      datasource uid; every query names only metrics dermad exports, and filters per-device
      metrics by the $device variable.
  check_deploy.py rules RULES.yml METRICS_SOURCE.cc...
      Every derma_ metric the rules (expressions and annotations) name is exported by dermad.
  check_deploy.py k8s-fleet CONFIGMAP.yml DERMAD
      The fleet config in the ConfigMap loads in dermad (which exits 2 on a bad config).

Metric names are read from the quoted "derma_..." strings in the metrics sources
(plugin/metrics/*.cc), so renaming a metric there breaks this check until deploy/ follows.
"""
import json
import re
import subprocess
import sys
import tempfile

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Families without a device label: per process, per kind or per gRPC method.
NOT_PER_DEVICE = {
    "derma_build_info",
    "derma_telemetry_samples_dropped_total",
    "derma_run_duration_seconds",
    "derma_grpc_server_handled_total",
    "derma_grpc_server_handling_seconds",
}


def exported_metrics(sources):
    names = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'"(derma_[a-z0-9_]+)"', f.read()))
    if not names:
        sys.exit(f"no derma_ metric names found in {sources}")
    return names


def family(name, exported):
    """The exported family a series name belongs to, or None."""
    if name in exported:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return None


def metric_names(text):
    return set(re.findall(r"\bderma_[a-z0-9_]+", text))


def check_dashboard(dashboard_path, datasource_path, sources):
    errors = []
    with open(datasource_path, encoding="utf-8") as f:
        uids = re.findall(r"^\s*uid:\s*['\"]?([\w-]+)", f.read(), re.MULTILINE)
    if len(uids) != 1:
        sys.exit(f"{datasource_path}: expected one datasource uid, found {uids}")
    uid = uids[0]
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)  # a JSON error fails here, with line and column
    exported = exported_metrics(sources)

    def check_datasource(where, datasource):
        if not isinstance(datasource, dict) or datasource.get("uid") != uid:
            errors.append(f"{where}: datasource {datasource!r} is not uid {uid!r}")
        elif datasource.get("type") != "prometheus":
            errors.append(f"{where}: datasource type {datasource.get('type')!r}")

    def check_expr(where, expr, needs_device_filter=True):
        names = metric_names(expr)
        if not names:
            errors.append(f"{where}: expr names no derma_ metric: {expr}")
        for name in sorted(names):
            fam = family(name, exported)
            if fam is None:
                errors.append(f"{where}: {name} is not exported by dermad")
            elif (needs_device_filter and fam not in NOT_PER_DEVICE
                  and 'device=~"$device"' not in expr):
                errors.append(f"{where}: {name} is not filtered by $device")

    for key in ("uid", "title", "schemaVersion"):
        if key not in dashboard:
            errors.append(f"dashboard has no {key}")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    if "device" not in variables:
        errors.append("dashboard has no device template variable")
    for name, variable in variables.items():
        if variable.get("type") == "query":
            check_datasource(f"variable {name}", variable.get("datasource"))
            query = variable.get("query")
            # The variables define $device, so they are not filtered by it.
            check_expr(f"variable {name}",
                       query.get("query", "") if isinstance(query, dict) else query or "",
                       needs_device_filter=False)

    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels of collapsed rows
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        errors.append(f"panel ids are not unique: {ids}")
    queries = 0
    for panel in panels:
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if "gridPos" not in panel:
            errors.append(f"{where}: no gridPos")
        check_datasource(where, panel.get("datasource"))
        if not panel.get("targets"):
            errors.append(f"{where}: no queries")
        for target in panel.get("targets", []):
            queries += 1
            check_datasource(f"{where} query {target.get('refId')}", target.get("datasource"))
            check_expr(f"{where} query {target.get('refId')}", target.get("expr", ""))

    for error in errors:
        print(f"{dashboard_path}: {error}", file=sys.stderr)
    if not errors:
        print(f"{dashboard_path}: {len(panels)} panels, {queries} queries, datasource {uid}: OK")
    return not errors


def check_rules(rules_path, sources):
    exported = exported_metrics(sources)
    with open(rules_path, encoding="utf-8") as f:
        names = metric_names(f.read())
    unknown = sorted(n for n in names if family(n, exported) is None)
    for name in unknown:
        print(f"{rules_path}: {name} is not exported by dermad", file=sys.stderr)
    if not unknown:
        print(f"{rules_path}: names {len(names)} derma_ metrics, all exported: OK")
    return not unknown


def check_k8s_fleet(configmap_path, dermad):
    """Extracts the `fleet.textproto: |` block scalar and starts dermad on it for a moment."""
    with open(configmap_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == "fleet.textproto: |"), None)
    if start is None:
        sys.exit(f"{configmap_path}: no `fleet.textproto: |` entry")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    body = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    with tempfile.NamedTemporaryFile("w", suffix=".textproto") as fleet:
        fleet.write("\n".join(body) + "\n")
        fleet.flush()
        result = subprocess.run(
            [dermad, f"--config={fleet.name}", "--listen=127.0.0.1:0", "--metrics_listen=",
             "--log_level=error", "--duration_s=0.2", "--noaudit"],
            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        print(f"{configmap_path}: dermad exited {result.returncode}: {result.stderr}",
              file=sys.stderr)
        return False
    print(f"{configmap_path}: {result.stdout.strip()}: OK")
    return True


def main(argv):
    if len(argv) >= 4 and argv[1] == "dashboard":
        ok = check_dashboard(argv[2], argv[3], argv[4:])
    elif len(argv) >= 3 and argv[1] == "rules":
        ok = check_rules(argv[2], argv[3:])
    elif len(argv) == 4 and argv[1] == "k8s-fleet":
        ok = check_k8s_fleet(argv[2], argv[3])
    else:
        sys.exit(__doc__)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
