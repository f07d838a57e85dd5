"""Cross-checks of deploy/ that no off-the-shelf validator makes; run by
deploy/check (with the venv that has PyYAML and cloudcoil's KEDA models).

- every metric the alert and recording rules, the rule tests, the Grafana
  dashboard and the HPA read is one Drover registers (found in the Rust
  sources), one of redis_exporter's, or a recording rule defined here;
- KEDA objects match KEDA's CRD schema (cloudcoil's generated models):
  required fields, types, and no field the schema does not know;
- worker grace periods (Kubernetes and compose) cover the shutdown timeout
  the worker is given, and the API's cover its preStop sleep;
- every Deployment has resource requests and the probes the roles call for;
- every host Prometheus scrapes and nginx proxies to is a compose service,
  and Prometheus reads the key file compose's setup writes;
- the location blocks of nginx/compose.conf are those of nginx/drover.conf;
- the Grafana dashboard is well formed and uses the provisioned datasource;
- the Dockerfile (not built in CI) has two stages, a new enough toolchain,
  a non-root user, drover as entrypoint and the ports the manifests use;
- with --live BIN, what a running Drover exports (see live()).

Prints one line per finding and exits 1 if there is any.
"""

import json
import re
import sys
import urllib.error
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


# --- metric names ------------------------------------------------------------

METRIC_SOURCES = ["src", "api/src", "worker/src", "scheduler/src", "queue-core/src", "dashboard/src"]
# prometheus crate constructors whose first argument is a metric name.
REGISTRATION = re.compile(
    r'(Histogram|Int)?(Opts|HistogramOpts|Gauge|Counter)(Vec)?::new\(\s*"(drover_[a-z0-9_]+)"'
)
HISTOGRAM = re.compile(r'HistogramOpts::new\(\s*"(drover_[a-z0-9_]+)"')
# redis_exporter's names used by the dashboard (its exporter/exporter.go,
# namespace "redis"); not verifiable here without running it.
REDIS_EXPORTER = {
    "redis_up",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_connected_clients",
    "redis_blocked_clients",
    "redis_commands_processed_total",
}
PROMETHEUS_BUILTIN = {"up"}


def drover_metrics() -> set[str]:
    names: set[str] = set()
    for rel in METRIC_SOURCES:
        for path in (ROOT / rel).rglob("*.rs"):
            text = path.read_text()
            names.update(m.group(4) for m in REGISTRATION.finditer(text))
            for m in HISTOGRAM.finditer(text):
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
    return names


def rule_files() -> list[Path]:
    return sorted((DEPLOY / "prometheus/rules").glob("*.yml"))


def recorded_names() -> set[str]:
    names = set()
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "deriv", "by", "on", "and", "or",
    "unless", "without", "histogram_quantile", "topk", "bottomk", "label_values", "le",
    "offset", "bool", "ignoring", "group_left", "group_right", "absent", "inf", "nan",
}


def names_in(expr: str) -> set[str]:
    """Series names an expression reads: words outside label matchers and
    strings that are not PromQL keywords or functions."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "{}", expr)
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    found = set()
    for m in re.finditer(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if word.lower() in PROMQL_WORDS or rest.startswith("("):
            continue
        found.add(word)
    return found


def check_metric_names() -> None:
    registered = drover_metrics()
    if len(registered) < 20:
        problem(f"found only {len(registered)} registered drover_ metrics in the sources; has the registration code moved?")
    recorded = recorded_names()
    known = registered | recorded | REDIS_EXPORTER | PROMETHEUS_BUILTIN

    used: dict[str, set[str]] = {}

    def use(where: str, expr: str) -> None:
        for name in names_in(expr):
            used.setdefault(name, set()).add(where)

    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for r in group["rules"]:
                use(f"{path.name}:{r.get('record') or r.get('alert')}", r["expr"])
    for path in sorted((DEPLOY / "prometheus/tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                use(path.name, series["series"])
    dashboard = json.loads((DEPLOY / "grafana/dashboards/drover.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            use(f"dashboard:{panel['title']}", target["expr"])
    for var in dashboard["templating"]["list"]:
        use("dashboard:$" + var["name"], re.sub(r"label_values\((\w+),.*", r"\1", var["definition"]))
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "HorizontalPodAutoscaler":
                for metric in doc["spec"].get("metrics", []):
                    if metric["type"] == "External":
                        use(path.name, metric["external"]["metric"]["name"])

    for name, places in sorted(used.items()):
        if name not in known:
            problem(f"metric {name} is used by {', '.join(sorted(places))} but nothing exports or records it")
    print(f"metric names: {len(used)} used; known: {len(registered)} Drover series, "
          f"{len(recorded)} recording rules, {len(REDIS_EXPORTER)} of redis_exporter's")


# --- KEDA --------------------------------------------------------------------

def differences(given, parsed, path: str) -> list[str]:
    """Where `given` (the YAML) has something `parsed` (the model's dump)
    lost or changed: unknown fields, coerced values."""
    if isinstance(given, dict):
        if not isinstance(parsed, dict):
            return [f"{path}: not an object in the schema"]
        out = []
        for key, value in given.items():
            if key not in parsed:
                out.append(f"{path}.{key}: not in the schema")
            else:
                out.extend(differences(value, parsed[key], f"{path}.{key}"))
        return out
    if isinstance(given, list):
        if not isinstance(parsed, list) or len(parsed) != len(given):
            return [f"{path}: list changed"]
        return [d for i, (g, p) in enumerate(zip(given, parsed)) for d in differences(g, p, f"{path}[{i}]")]
    return [] if given == parsed else [f"{path}: {given!r} read as {parsed!r}"]


def check_keda() -> None:
    from cloudcoil.models.keda import v1alpha1

    seen = 0
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or not doc.get("apiVersion", "").startswith("keda.sh/"):
                continue
            model = getattr(v1alpha1, doc["kind"], None)
            if model is None or doc["apiVersion"] != "keda.sh/v1alpha1":
                problem(f"{path.name}: no KEDA schema for {doc['apiVersion']} {doc['kind']}")
                continue
            try:
                parsed = model.model_validate(doc)
            except Exception as e:  # pydantic's ValidationError lists every field
                problem(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {e}")
                continue
            dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
            for d in differences(doc, dumped, doc["kind"]):
                problem(f"{path.name}: {d}")
            seen += 1
    if seen == 0:
        problem("no KEDA object found in deploy/k8s")
    print(f"KEDA: {seen} objects checked against KEDA's CRD models")


# --- grace periods, probes, resources -----------------------------------------

WORKER_DEFAULT_SHUTDOWN_MS = 30_000  # worker/src/config.rs


def flag(args: list[str], name: str):
    return args[args.index(name) + 1] if name in args else None


def prestop_secs(container: dict) -> int:
    hook = container.get("lifecycle", {}).get("preStop", {})
    return int(hook.get("sleep", {}).get("seconds", 0))


def check_kubernetes() -> None:
    deployments = 0
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            deployments += 1
            name = doc["metadata"]["name"]
            pod = doc["spec"]["template"]["spec"]
            grace = pod.get("terminationGracePeriodSeconds", 30)
            for c in pod["containers"]:
                args = c.get("args", [])
                role = args[0] if args else ""
                where = f"{path.name}: {name}/{c['name']}"
                if not c.get("resources", {}).get("requests"):
                    problem(f"{where}: no resource requests")
                probes = {k: c.get(k, {}).get("httpGet", {}).get("path")
                          for k in ("readinessProbe", "livenessProbe")}
                if role == "serve":
                    if probes != {"readinessProbe": "/ready", "livenessProbe": "/health"}:
                        problem(f"{where}: serve wants readiness on /ready and liveness on /health, has {probes}")
                    if grace < prestop_secs(c) + 10:
                        problem(f"{where}: grace {grace}s leaves under 10 s after the {prestop_secs(c)}s preStop")
                elif role in ("worker", "scheduler"):
                    if probes["livenessProbe"] != "/health" or "--metrics-addr" not in args:
                        problem(f"{where}: {role} wants --metrics-addr and liveness on its /health")
                if role == "worker":
                    shutdown_ms = flag(args, "--shutdown-timeout")
                    shutdown = int(shutdown_ms or WORKER_DEFAULT_SHUTDOWN_MS) / 1000
                    need = shutdown + prestop_secs(c)
                    if not need + 10 <= grace <= need + 120:
                        problem(f"{where}: terminationGracePeriodSeconds {grace} does not match "
                                f"shutdown timeout {shutdown:g}s + preStop {prestop_secs(c)}s (+10..120 s)")
    if deployments < 3:
        problem(f"expected Deployments for serve, worker and scheduler, found {deployments}")
    print(f"Kubernetes: {deployments} Deployments checked for grace periods, probes and requests")


def check_compose() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for name, svc in services.items():
        cmd = svc.get("command") or []
        if not cmd or cmd[0] != "worker":
            continue
        shutdown = int(flag(cmd, "--shutdown-timeout") or WORKER_DEFAULT_SHUTDOWN_MS) / 1000
        m = re.fullmatch(r"(\d+)s", str(svc.get("stop_grace_period", "10s")))
        grace = int(m.group(1)) if m else 0
        if not shutdown + 2 <= grace <= shutdown + 60:
            problem(f"compose.yaml: {name}: stop_grace_period {grace}s does not cover shutdown timeout {shutdown:g}s")

    # Every host Prometheus and nginx name is a compose service.
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    hosts = set()
    for job in prom["scrape_configs"]:
        for sc in job.get("static_configs", []):
            hosts.update(t.rsplit(":", 1)[0] for t in sc["targets"])
        for sd in job.get("dns_sd_configs", []):
            hosts.update(sd["names"])
    conf = (DEPLOY / "nginx/compose.conf").read_text()
    hosts.update(re.findall(r"^\s*server\s+([a-z0-9-]+):\d+", conf, re.M))
    for host in sorted(hosts - set(services)):
        problem(f"{host} is scraped or proxied to but is no service of compose.yaml")

    # The key file setup writes is the one Prometheus reads.
    def mounts(svc: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in services[svc].get("volumes", [])}

    setup_script = services["setup"]["entrypoint"][2]
    for job in prom["scrape_configs"]:
        cred = job.get("authorization", {}).get("credentials_file")
        if not cred:
            continue
        directory, name = cred.rsplit("/", 1)
        volume = mounts("prometheus").get(directory)
        written = {v: d for d, v in mounts("setup").items()}.get(volume)
        if volume is None or written is None or f"{written}/{name}" not in setup_script:
            problem(f"prometheus.yml: {job['job_name']} reads {cred}, which compose's setup does not write")
    print("compose: worker grace periods, scrape and proxy targets, the Prometheus key file")


# --- nginx and Grafana ----------------------------------------------------------

def locations(conf: str) -> dict[str, str]:
    text = "\n".join(line.split("#", 1)[0].strip() for line in conf.splitlines())
    out = {}
    for m in re.finditer(r"location\s+([^{]+?)\s*\{([^}]*)\}", text):
        out[m.group(1)] = " ".join(m.group(2).split())
    return out


def check_nginx() -> None:
    base = locations((DEPLOY / "nginx/drover.conf").read_text())
    compose = locations((DEPLOY / "nginx/compose.conf").read_text())
    if not base:
        problem("nginx/drover.conf: no location blocks found")
    for loc, body in base.items():
        if compose.get(loc) != body:
            problem(f"nginx/compose.conf: location {loc} differs from drover.conf's")
    print(f"nginx: compose.conf has drover.conf's {len(base)} location blocks")


def check_dockerfile() -> None:
    """What CI cannot build (no Docker daemon) it can still read: two
    stages, a toolchain no older than the workspace's rust-version, a
    non-root runtime user, and the ports compose and Kubernetes use."""
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    if len(froms) < 2:
        problem(f"Dockerfile: {len(froms)} stage(s), want a build and a runtime stage")
    need = re.search(r'rust-version\s*=\s*"(\d+)\.(\d+)"', (ROOT / "Cargo.toml").read_text())
    have = re.match(r"rust:(\d+)\.(\d+)", froms[0] if froms else "")
    if not need or not have or tuple(map(int, have.groups())) < tuple(map(int, need.groups())):
        problem(f"Dockerfile: build stage {froms[:1]} is older than the workspace's rust-version")
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")):]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem("Dockerfile: the runtime stage does not switch to a non-root USER")
    exposed = {p for line in runtime if line.startswith("EXPOSE ") for p in line.split()[1:]}
    if not {"8080", "9100"} <= exposed:
        problem(f"Dockerfile: EXPOSE {sorted(exposed)}, compose and Kubernetes use 8080 and 9100")
    if not any(line.startswith("ENTRYPOINT") and "drover" in line for line in runtime):
        problem("Dockerfile: the entrypoint is not drover (every role passes only its command)")
    build = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["x-drover"]["build"]
    if (DEPLOY / build["context"] / build["dockerfile"]).resolve() != (DEPLOY / "Dockerfile").resolve():
        problem(f"compose.yaml builds {build}, not deploy/Dockerfile")
    print(f"Dockerfile: stages {', '.join(froms)}; runtime user {users[-1] if users else '?'}")


def check_grafana() -> None:
    dash = json.loads((DEPLOY / "grafana/dashboards/drover.json").read_text())
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in prov["datasources"]}
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        problem("dashboard: panel ids repeat")
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    for want in ("API", "Queues", "Workers", "Autoscaler", "Redis"):
        if not any(r.startswith(want) for r in rows):
            problem(f"dashboard: no {want} row")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            problem(f"dashboard: panel {p['title']} is wider than the grid")
        if not p.get("targets"):
            problem(f"dashboard: panel {p['title']} has no query")
        for t in p.get("targets", []):
            if t["datasource"]["uid"] not in uids:
                problem(f"dashboard: panel {p['title']} uses datasource {t['datasource']['uid']}, not a provisioned one")
    print(f"Grafana: {len(ids) - len(rows)} panels in {len(rows)} rows")


# --- live: the names a running Drover exports ----------------------------------

# Series a short run below must show: the ones alerts and panels lean on.
MUST_APPEAR = {
    "drover_http_requests_total", "drover_http_request_duration_seconds_bucket",
    "drover_queue_jobs", "drover_queue_backlog_jobs", "drover_queue_latency_seconds",
    "drover_queue_jobs_completed_total", "drover_jobs_processed_total",
    "drover_job_duration_seconds_bucket", "drover_jobs_in_flight", "drover_worker_concurrency",
    "drover_autoscaler_leader", "drover_autoscaler_desired_workers",
    "drover_autoscaler_actual_workers", "drover_store_pool_connections", "drover_workflow_runs",
}


def live(binary: str, prometheus: str | None) -> None:
    """Runs compose's setup script, `drover serve`, `drover worker` and
    `drover scheduler` (with compose's drover.toml) against a private
    redis-server, pushes jobs through, scrapes the three /metrics and
    checks the names against the ones check_metric_names() trusts. With a
    `prometheus` binary, also runs Prometheus on deploy/prometheus/ (the
    targets pointed at these processes) and checks every rule evaluates
    without error and the expected recording rules produce series."""
    import os
    import signal
    import socket
    import subprocess
    import tempfile
    import time
    import urllib.request

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def get(url: str, token: str | None = None, data: bytes | None = None) -> str:
        req = urllib.request.Request(url, data=data)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read().decode()

    def poll(what: str, seconds: float, fn):
        deadline = time.monotonic() + seconds
        while True:
            try:
                value = fn()
                if value:
                    return value
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"live: timed out waiting for {what}")
            time.sleep(0.2)

    tmp = Path(tempfile.mkdtemp(prefix="drover-deploy-live-"))
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "drover").symlink_to(Path(binary).resolve())
    rport, aport, wport, sport = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", REDIS_URL=f"redis://127.0.0.1:{rport}",
               DROVER_DATA_DIR=str(tmp), DROVER_CONFIG=str(DEPLOY / "compose/drover.toml"))
    env.pop("DATABASE_URL", None)  # SQLite in the temporary directory
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        log = open(tmp / f"{args[0]}-{len(procs)}.log", "w")
        procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL))

    try:
        start("redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        poll("redis-server", 10, lambda: socket.create_connection(("127.0.0.1", rport), 1).close() or True)

        # compose's setup service, as compose runs it ($$ is compose's $).
        setup = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["setup"]["entrypoint"]
        script = setup[2].replace("$$", "$").replace("/var/lib/drover/secrets", str(tmp))
        for _ in range(2):  # the second start must leave the key alone
            subprocess.run(["sh", "-c", script, "setup"], env=env, check=True)
        token = (tmp / "prometheus.token").read_text().strip()
        keys = subprocess.run(["sh", "-c", script, "setup", "keys", "list", "--json"], env=env, check=True,
                              capture_output=True, text=True).stdout
        if [k["name"] for k in json.loads(keys)].count("prometheus") != 1:
            problem(f"live: compose setup left keys {keys.strip()}")
        app = subprocess.run([binary, "keys", "create", "--name", "app", "--scope", "enqueue:*"], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()

        start(binary, "serve", "--addr", f"127.0.0.1:{aport}")
        start(binary, "worker", "--queue", "default", "--concurrency", "4", "--handler", "echo",
              "--metrics-addr", f"127.0.0.1:{wport}")
        start(binary, "scheduler", "--metrics-addr", f"127.0.0.1:{sport}")
        api = f"http://127.0.0.1:{aport}"
        poll("drover serve /ready", 30, lambda: json.loads(get(f"{api}/ready"))["status"] == "ready")
        jobs = 20
        for i in range(jobs):
            get(f"{api}/api/v1/queues/default/jobs", app, json.dumps({"name": "live", "data": {"i": i}}).encode())

        def processed() -> bool:
            text = get(f"http://127.0.0.1:{wport}/metrics")
            done = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("drover_jobs_processed_total{") and 'outcome="completed"' in line)
            return done >= jobs

        poll("the worker to complete the jobs", 60, processed)

        def scraped() -> set[str]:
            names = set()
            for url, auth in ((f"{api}/metrics", token), (f"http://127.0.0.1:{wport}/metrics", None),
                              (f"http://127.0.0.1:{sport}/metrics", None)):
                for line in get(url, auth).splitlines():
                    if line and not line.startswith("#"):
                        names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
            return names

        # The API refreshes queue figures every queue_metrics_interval_ms.
        names = poll("every expected series", 30, lambda: (lambda n: n if MUST_APPEAR <= n else None)(scraped()))
        if prometheus:
            targets = {"drover-api": f"127.0.0.1:{aport}", "drover-worker": f"127.0.0.1:{wport}",
                       "drover-scheduler": f"127.0.0.1:{sport}"}
            evaluate_rules(prometheus, tmp, targets, tmp / "prometheus.token", start, poll, get, free_port)
    except SystemExit as e:
        raise SystemExit(f"{e} (the processes' logs are in {tmp})") from None
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()

    registered = drover_metrics()
    for name in sorted(n for n in names if n.startswith("drover_") and n not in registered):
        problem(f"live: {name} is exported but check.py did not find it in the sources (extend REGISTRATION)")
    print(f"live: {len(names)} series names scraped from serve, worker and scheduler; "
          f"{len(MUST_APPEAR)} expected ones present, all known to the source scan")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


# Recording rules a healthy run of serve + worker + scheduler must fill
# (the rest need failures, stalls or errors to have any series).
MUST_RECORD = {
    "drover:http_requests:rate5m", "drover:http_errors:ratio_rate5m",
    "drover:http_request_duration_seconds:p95_5m", "queue_state:drover_queue_jobs:max",
    "queue:drover_queue_backlog_jobs:max", "queue:drover_queue_latency_seconds:max",
    "queue:drover_queue_jobs_completed:rate5m", "queue_outcome:drover_jobs_processed:rate5m",
    "queue:drover_job_duration_seconds:p95_5m", "queue:drover_jobs_in_flight:sum",
    "queue:drover_worker_concurrency:sum", "queue:drover_worker_processes:count",
}


def evaluate_rules(prometheus, tmp, targets, token, start, poll, get, free_port) -> None:
    """Prometheus with deploy/prometheus/'s config and rules, its targets
    moved to the processes of live(), scraping and evaluating every second."""
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "prometheus" / f) for f in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue  # redis_exporter: not run here
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
        jobs.append(job)
    config["scrape_configs"] = jobs
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    start(prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
          f"--web.listen-address=127.0.0.1:{port}")
    api = f"http://127.0.0.1:{port}/api/v1"

    def targets_up() -> bool:
        active = json.loads(get(f"{api}/targets"))["data"]["activeTargets"]
        return len(active) == len(jobs) and all(t["health"] == "up" for t in active)

    poll("Prometheus to scrape every target", 60, targets_up)

    def recorded() -> set[str] | None:
        have = {r for r in MUST_RECORD if json.loads(get(f"{api}/query?query={r}"))["data"]["result"]}
        return have if have == MUST_RECORD else None

    try:
        poll("every expected recording rule to have series", 60, recorded)
    except SystemExit as e:
        missing = {r for r in MUST_RECORD if not json.loads(get(f"{api}/query?query={r}"))["data"]["result"]}
        raise SystemExit(f"{e}: still empty: {', '.join(sorted(missing))}") from None
    rules = [r for g in json.loads(get(f"{api}/rules"))["data"]["groups"] for r in g["rules"]]
    for r in rules:
        if r["health"] != "ok":
            problem(f"live: rule {r['name']} fails to evaluate: {r.get('lastError')}")
    # Grafana's queries, with its $queue variable at "All": Prometheus must
    # accept each (promtool has no check for queries outside rule files).
    dashboard = json.loads((DEPLOY / "grafana/dashboards/drover.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for expr in queries:
        url = f"{api}/query?" + urllib.parse.urlencode({"query": expr.replace("$queue", ".*")})
        try:
            get(url)
        except urllib.error.HTTPError as e:
            problem(f"live: dashboard query {expr!r} is refused by Prometheus: {e.read().decode()}")
    # Alert states are not asserted: the autoscaler's desired count runs
    # ahead of the workers' heartbeats for a few seconds, which is a real
    # (pending, never firing) DroverAutoscalerBelowDesired.
    print(f"live: Prometheus scraped serve, worker and scheduler; {len(rules)} rules evaluate "
          f"without error, the {len(MUST_RECORD)} expected recording rules have series, "
          f"it accepts the dashboard's {len(queries)} queries")


def main() -> int:
    for check in (check_metric_names, check_keda, check_kubernetes, check_compose, check_nginx, check_grafana,
                  check_dockerfile):
        check()
    if len(sys.argv) > 2 and sys.argv[1] == "--live":
        live(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
