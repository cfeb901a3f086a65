#!/usr/bin/env python3
"""Static checks of the compose stack in docker/, without a container engine.

    python3 docker/check.py          (Python >= 3.11 and PyYAML: pip install pyyaml)

Checks, and exits 1 with one line per problem when any fails:

* compose.yml: duplicate YAML keys, known compose keys only (no `version:`), the expected
  services, build (context and Dockerfile exist) or image on each, short-syntax ports quoted
  and parsable, published ports unique and bound to the host's loopback, bind-mount sources
  present and readable by the containers' non-root users, named volumes and networks declared,
  health checks (and `depends_on` conditions that can be met), a non-root user for every
  service (compose `user:` or the Dockerfile's final `USER`), `${VAR}` with defaults only.
* tokengate: its `--config` is docker/tokengate.compose.toml (not the image's conf/ copy)
  through the volumes; that TOML parses, its listen/admin ports are published and used by the
  health check, every `jwks_file` exists and resolves to the same file inside the container,
  every upstream is the fixed address of a compose service on a shared network, every
  [redis] URL names a compose service on a shared network, and stop_grace_period exceeds
  grace_period + shutdown_timeout.
* prometheus.yml: mounted where Prometheus reads it, and scrapes `tokengate:<admin port>`.
* Grafana provisioning: mounted where Grafana reads it; the data source URL names the
  Prometheus service and port; the dashboard provider path maps to a folder of dashboards.
* Every dashboard JSON: schemaVersion >= 36, no `${DS_...}` inputs, data sources by the
  provisioned uid, unique panel ids, every query's PromQL parsed for metric and function
  names: metric names must be documented in README.md's metrics table (histograms only as
  `_bucket`/`_sum`/`_count`), counters only under rate()/increase()/..., `_bucket` only under
  histogram_quantile() grouped by `le`, and dashboard variables defined.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import sys
import tomllib
from pathlib import Path, PurePosixPath

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("docker/check.py: PyYAML is required (pip install pyyaml)")

DOCKER = Path(__file__).resolve().parent
ROOT = DOCKER.parent
COMPOSE = DOCKER / "compose.yml"
README = ROOT / "README.md"

# Services the stack must define, and the one built from the repository.
REQUIRED_SERVICES = {"tokengate", "redis", "echo", "prometheus", "grafana"}
GATEWAY = "tokengate"
PROMETHEUS = "prometheus"
GRAFANA = "grafana"
# Services that cannot carry a health check, with the reason.
NO_HEALTHCHECK = {"echo": "scratch image without a shell or HTTP client"}
# The image's own configuration: compose must not run with it.
IMAGE_DEFAULT_CONFIG = "/etc/tokengate/tokengate.toml"

# Metrics the dashboard may use before README.md documents them (name -> type). Keep it
# empty: every metric a dashboard uses should be documented.
PENDING_METRICS: dict[str, str] = {}

problems: list[str] = []


def fail(where: str, msg: str) -> None:
    problems.append(f"{where}: {msg}")


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ---------------------------------------------------------------------------------------
# Loading


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (compose does too)."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", k_node.start_mark
            )
        out[key] = loader.construct_object(v_node, deep=deep)
    return out


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.load(f, Loader=StrictLoader)
    except FileNotFoundError:
        fail(rel(path), "missing")
    except yaml.YAMLError as e:
        fail(rel(path), f"invalid YAML: {e}".replace("\n", " "))
    return None


def load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(rel(path), "missing")
    except json.JSONDecodeError as e:
        fail(rel(path), f"invalid JSON: {e}")
    return None


def load_toml(path: Path):
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        fail(rel(path), "missing")
    except tomllib.TOMLDecodeError as e:
        fail(rel(path), f"invalid TOML: {e}")
    return None


# ---------------------------------------------------------------------------------------
# README metrics table

METRIC_TYPES = {"counter", "gauge", "histogram", "summary"}


def readme_metrics() -> dict[str, str]:
    """Metric name -> type, from the table under README.md's `## Metrics` heading."""
    try:
        text = README.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail("README.md", "missing")
        return {}
    m = re.search(r"^## Metrics\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        fail("README.md", "no '## Metrics' section")
        return {}
    found: dict[str, str] = {}
    for line in m.group(1).splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        names = re.findall(r"`(tokengate_[a-z0-9_]+)`", cells[0])
        if not names:
            continue
        kind = cells[1].strip("` ").lower()
        if kind not in METRIC_TYPES:
            fail("README.md", f"metrics table: {names[0]}: unknown type {cells[1]!r}")
            continue
        for n in names:
            found[n] = kind
    if not found:
        fail("README.md", "metrics table: no `tokengate_...` metric names found")
    return found


def series_names(metrics: dict[str, str]) -> dict[str, str]:
    """Queryable series name -> 'counter' | 'gauge' (histogram parts are counters)."""
    out: dict[str, str] = {}
    for name, kind in metrics.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = "counter"
        elif kind == "summary":
            out[name] = "gauge"
            out[name + "_sum"] = "counter"
            out[name + "_count"] = "counter"
        else:
            out[name] = kind
    return out


# ---------------------------------------------------------------------------------------
# PromQL

PROMQL_FUNCTIONS = set(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters hour idelta increase info irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
    """.split()
)
PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
    "by", "without", "on", "ignoring", "group_left", "group_right",
}
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets", "absent", "absent_over_time"}
GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
TOKEN = re.compile(r"(\d[\w.]*)|([A-Za-z_:][\w:]*)(\s*\()?")


def enclosing_function(s: str, pos: int) -> str | None:
    """Name of the function whose argument list contains position `pos` of `s`."""
    depth = 0
    for i in range(pos - 1, -1, -1):
        c = s[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"([A-Za-z_][\w]*)\s*$", s[:i])
                return m.group(1) if m else None
            depth -= 1
    return None


def check_promql(where: str, expr: str, series: dict[str, str], variables: set[str],
                 used: set[str], selector_only: bool = False) -> None:
    """Checks one query; `selector_only`: the series selector of label_values(), where a
    raw counter is fine."""
    if not expr.strip():
        fail(where, "empty query")
        return
    for m in GRAFANA_VAR.finditer(expr):
        name = next(g for g in m.groups() if g)
        if not name.startswith("__") and name not in variables:
            fail(where, f"dashboard variable ${name} is not defined in templating")
    s = GRAFANA_VAR.sub("1", expr)  # a variable stands for a value or a duration

    # Balanced brackets outside strings.
    bare = STRINGS.sub('""', s)
    stack = []
    for c in bare:
        if c in "([{":
            stack.append(c)
        elif c in ")]}":
            if not stack or "([{"[")]}".index(c)] != stack.pop():
                fail(where, f"unbalanced {c!r} in {expr!r}")
                return
    if stack:
        fail(where, f"unclosed {stack[-1]!r} in {expr!r}")
        return

    names: list[tuple[str, int]] = []
    for m in re.finditer(r"__name__\s*(=~|!~|!=|=)\s*\"([^\"]*)\"", s):
        if m.group(1) != "=":
            fail(where, f"__name__{m.group(1)} cannot be checked; select metrics by name")
        else:
            names.append((m.group(2), -1))
    # Drop strings, label matchers, ranges/subqueries, grouping label lists (keep the
    # 'le' information first) — what is left are functions, keywords, numbers and metrics.
    has_le_grouping = any(re.search(r"\ble\b", g) for g in GROUPING.findall(bare))
    s = STRINGS.sub('""', s)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\[\]]*\]", " ", s)
    s = GROUPING.sub(" ", s)
    for m in TOKEN.finditer(s):
        ident, call = m.group(2), m.group(3)
        if not ident:
            continue
        if call:
            if ident not in PROMQL_FUNCTIONS:
                fail(where, f"unknown PromQL function {ident}() in {expr!r}")
            continue
        if ident.lower() in PROMQL_KEYWORDS:
            continue
        names.append((ident, m.start(2)))

    if not names:
        fail(where, f"no metric name in {expr!r}")
    for name, pos in names:
        used.add(name)
        kind = series.get(name)
        if kind is None:
            fail(where, f"metric {name} is not in README.md's metrics table "
                        f"(nor one of its histograms' _bucket/_sum/_count series)")
            continue
        if pos < 0 or selector_only:
            continue
        fn = enclosing_function(s, pos)
        if kind == "counter" and fn not in COUNTER_FUNCTIONS:
            fail(where, f"counter {name} used outside rate()/irate()/increase() "
                        f"(inside {fn or 'nothing'}())")
        if kind == "gauge" and fn in {"rate", "irate", "increase"}:
            fail(where, f"{fn}() of gauge {name}")
    buckets = [n for n, _ in names if n.endswith("_bucket")]
    if buckets and "histogram_quantile" not in s:
        fail(where, f"{buckets[0]} used outside histogram_quantile()")
    if "histogram_quantile" in s:
        if not buckets:
            fail(where, "histogram_quantile() without a _bucket series")
        elif not has_le_grouping:
            fail(where, "histogram_quantile() over an aggregation that does not keep 'le'")


# ---------------------------------------------------------------------------------------
# Compose helpers

TOP_KEYS = {"name", "services", "networks", "volumes", "configs", "secrets", "include", "models"}
SERVICE_KEYS = set(
    """
    annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command
    configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period
    cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy develop
    device_cgroup_rules devices dns dns_opt dns_search domainname driver_opts entrypoint
    env_file environment expose extends external_links extra_hosts gpus group_add
    healthcheck hostname image init ipc isolation labels label_file links logging
    mac_address mem_limit mem_reservation mem_swappiness memswap_limit models network_mode
    networks oom_kill_disable oom_score_adj pid pids_limit platform ports post_start
    pre_stop privileged profiles provider pull_policy read_only restart runtime scale
    secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt
    sysctls tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from
    working_dir
    """.split()
)
BUILD_KEYS = set(
    """
    context dockerfile dockerfile_inline args ssh cache_from cache_to additional_contexts
    entitlements extra_hosts isolation labels network no_cache platforms privileged pull
    secrets shm_size tags target ulimits
    """.split()
)
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval",
               "disable"}
DEPENDS_KEYS = {"condition", "restart", "required"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
NETWORK_KEYS = {"driver", "driver_opts", "attachable", "enable_ipv6", "enable_ipv4",
                "external", "internal", "ipam", "labels", "name"}
SERVICE_NETWORK_KEYS = {"aliases", "ipv4_address", "ipv6_address", "link_local_ips",
                        "mac_address", "driver_opts", "priority", "gw_priority",
                        "interface_name"}
DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def seconds(value) -> float | None:
    if not isinstance(value, str) or not DURATION.match(value.strip()):
        return None
    return sum(float(n) * UNIT_SECONDS[u] for n, u in DURATION_PART.findall(value))


def unknown_keys(where: str, d: dict, allowed: set[str]) -> None:
    for k in d:
        if not (isinstance(k, str) and (k in allowed or k.startswith("x-"))):
            fail(where, f"unknown key {k!r}")


def as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def service_networks(svc: dict) -> dict[str, dict]:
    nets = svc.get("networks")
    if nets is None:
        return {"default": {}}
    if isinstance(nets, list):
        return {n: {} for n in nets}
    return {n: (c or {}) for n, c in nets.items()}


def parse_port(where: str, p) -> tuple[str | None, int | None, int] | None:
    """(host_ip, published, target) of a port entry."""
    if isinstance(p, dict):
        try:
            pub = p.get("published")
            return p.get("host_ip"), int(pub) if pub is not None else None, int(p["target"])
        except (KeyError, TypeError, ValueError):
            fail(where, f"long-syntax port needs an integer target: {p!r}")
            return None
    if not isinstance(p, str):
        fail(where, f"{p!r}: quote short-syntax ports (YAML 1.1 reads some as numbers)")
        return None
    spec = p.split("/", 1)[0]
    parts = spec.rsplit(":", 2)
    try:
        if len(parts) == 3:
            return parts[0].strip("[]"), int(parts[1]), int(parts[2])
        if len(parts) == 2:
            return None, int(parts[0]), int(parts[1])
        return None, None, int(parts[0])
    except ValueError:
        fail(where, f"unparsable port {p!r}")
        return None


def parse_volume(where: str, v) -> tuple[str, str | None, str] | None:
    """(kind 'bind'|'volume'|'tmpfs', source, target)."""
    if isinstance(v, dict):
        kind = v.get("type", "volume")
        if "target" not in v:
            fail(where, f"long-syntax volume without target: {v!r}")
            return None
        return kind, v.get("source"), v["target"]
    if not isinstance(v, str):
        fail(where, f"unparsable volume {v!r}")
        return None
    parts = v.split(":")
    if len(parts) == 1:
        return "volume", None, parts[0]
    src, target = parts[0], parts[1]
    if len(parts) > 3 or (len(parts) == 3 and not re.fullmatch(r"[a-z,]+", parts[2])):
        fail(where, f"unparsable volume {v!r}")
        return None
    kind = "bind" if src.startswith((".", "/", "~")) else "volume"
    return kind, src, target


def binds(svc: dict) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of a service's bind mounts."""
    out = []
    for v in as_list(svc.get("volumes")):
        parsed = parse_volume("", v)
        if parsed and parsed[0] == "bind" and parsed[1]:
            host = (COMPOSE.parent / os.path.expanduser(parsed[1])).resolve()
            out.append((host, PurePosixPath(parsed[2])))
    return out


def to_host(svc: dict, container_path: str | PurePosixPath) -> Path | None:
    """The repository path a container path comes from, through the bind mounts."""
    cp = PurePosixPath(os.path.normpath(str(container_path)))
    best = None
    for host, target in binds(svc):
        if cp == target or target in cp.parents:
            if best is None or len(target.parts) > len(best[1].parts):
                best = (host, target)
    if best is None:
        return None
    return best[0].joinpath(*cp.parts[len(best[1].parts):])


def readable_by_others(where: str, path: Path) -> None:
    """Containers run as non-root uids: bind-mounted files must be world-readable."""
    paths = [path] + (sorted(path.rglob("*")) if path.is_dir() else [])
    for p in paths:
        mode = p.stat().st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0)
        if mode & need != need:
            fail(where, f"{rel(p)} is not readable by other users (mode "
                        f"{stat.filemode(mode)}); the container's non-root user needs it")


def dockerfile_user(path: Path) -> str | None:
    """USER of the Dockerfile's final stage (None when it has none)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    user = None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            user = None
        elif words[0].upper() == "USER" and len(words) > 1:
            user = words[1].strip()
    return user


def is_root(user: str) -> bool:
    return user.split(":")[0] in {"root", "0"}


def host_port(addr: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[?([^\]]*)\]?:(\d+)", addr or "")
    return (m.group(1), int(m.group(2))) if m else None


# ---------------------------------------------------------------------------------------
# compose.yml


def check_compose(doc) -> dict:
    where = rel(COMPOSE)
    if not isinstance(doc, dict):
        fail(where, "not a mapping")
        return {}
    if "version" in doc:
        fail(where, "top-level 'version' is obsolete in the compose spec; remove it")
    unknown_keys(where, {k: v for k, v in doc.items() if k != "version"}, TOP_KEYS)
    services = doc.get("services") or {}
    if not isinstance(services, dict) or not services:
        fail(where, "no services")
        return {}
    for missing in sorted(REQUIRED_SERVICES - services.keys()):
        fail(where, f"service {missing!r} is missing")
    networks = doc.get("networks") or {}
    volumes = doc.get("volumes") or {}
    for n, cfg in networks.items():
        if cfg:
            unknown_keys(f"{where}: networks.{n}", cfg, NETWORK_KEYS)
    used_volumes: set[str] = set()
    published: dict[int, str] = {}

    # ${VAR} without a default becomes an empty string (with only a warning).
    raw = COMPOSE.read_text(encoding="utf-8")
    for m in re.finditer(r"(?<!\$)\$(?:\{(\w+)\}|(\w+))", raw):
        fail(where, f"${{{m.group(1) or m.group(2)}}} has no default; use ${{VAR:-default}}")

    for name, svc in services.items():
        w = f"{where}: services.{name}"
        if not isinstance(svc, dict):
            fail(w, "not a mapping")
            continue
        unknown_keys(w, svc, SERVICE_KEYS)

        # build / image
        build = svc.get("build")
        if not build and not svc.get("image"):
            fail(w, "neither build nor image")
        dockerfile = None
        if build:
            b = {"context": build} if isinstance(build, str) else build
            unknown_keys(f"{w}.build", b, BUILD_KEYS)
            ctx = (COMPOSE.parent / b.get("context", ".")).resolve()
            if not ctx.is_dir():
                fail(f"{w}.build.context", f"{b.get('context')!r} is not a directory")
            else:
                dockerfile = ctx / b.get("dockerfile", "Dockerfile")
                if not dockerfile.is_file():
                    fail(f"{w}.build.dockerfile", f"{rel(dockerfile)} does not exist")
                    dockerfile = None
        elif isinstance(svc.get("image"), str) and ":" not in svc["image"].rsplit("/", 1)[-1]:
            fail(f"{w}.image", f"{svc['image']!r}: pin a tag")

        # user: never root
        user = svc.get("user")
        if user is not None:
            if is_root(str(user)):
                fail(f"{w}.user", "runs as root")
        elif dockerfile is not None:
            du = dockerfile_user(dockerfile)
            if du is None or is_root(du):
                fail(w, f"no user: and {rel(dockerfile)}'s final stage has no non-root USER")
        else:
            fail(w, "set user: to a non-root user")

        # ports
        for i, p in enumerate(as_list(svc.get("ports"))):
            parsed = parse_port(f"{w}.ports[{i}]", p)
            if not parsed:
                continue
            ip, pub, _target = parsed
            if pub is None:
                continue
            if pub in published:
                fail(f"{w}.ports[{i}]", f"host port {pub} is also published by {published[pub]}")
            published[pub] = name
            if ip not in {"127.0.0.1", "::1", "localhost"}:
                fail(f"{w}.ports[{i}]", f"{p!r}: bind published ports to 127.0.0.1")

        # volumes
        for i, v in enumerate(as_list(svc.get("volumes"))):
            parsed = parse_volume(f"{w}.volumes[{i}]", v)
            if not parsed:
                continue
            kind, src, _target = parsed
            if kind == "bind":
                host = (COMPOSE.parent / os.path.expanduser(src or "")).resolve()
                if not host.exists():
                    fail(f"{w}.volumes[{i}]", f"bind source {rel(host)} does not exist")
                else:
                    readable_by_others(f"{w}.volumes[{i}]", host)
            elif kind == "volume" and src:
                used_volumes.add(src)
                if src not in volumes:
                    fail(f"{w}.volumes[{i}]", f"named volume {src!r} is not declared")

        # networks
        if "network_mode" not in svc:
            for n, cfg in service_networks(svc).items():
                if n != "default" and n not in networks:
                    fail(f"{w}.networks", f"network {n!r} is not declared")
                if isinstance(cfg, dict):
                    unknown_keys(f"{w}.networks.{n}", cfg, SERVICE_NETWORK_KEYS)

        # healthcheck
        hc = svc.get("healthcheck")
        if hc is None:
            if name not in NO_HEALTHCHECK:
                fail(w, "no healthcheck")
        elif not isinstance(hc, dict):
            fail(f"{w}.healthcheck", "not a mapping")
        else:
            unknown_keys(f"{w}.healthcheck", hc, HEALTH_KEYS)
            test = hc.get("test")
            if hc.get("disable"):
                fail(f"{w}.healthcheck", "disabled")
            elif isinstance(test, list):
                if not test or test[0] not in {"CMD", "CMD-SHELL"} or len(test) < 2:
                    fail(f"{w}.healthcheck.test", f"{test!r}: expected [CMD, ...] or [CMD-SHELL, ...]")
            elif not (isinstance(test, str) and test.strip()):
                fail(f"{w}.healthcheck.test", "missing")
            for k in ("interval", "timeout", "start_period", "start_interval"):
                if k in hc and seconds(hc[k]) is None:
                    fail(f"{w}.healthcheck.{k}", f"{hc[k]!r} is not a duration")
            if "retries" in hc and not (isinstance(hc["retries"], int) and hc["retries"] > 0):
                fail(f"{w}.healthcheck.retries", "must be a positive integer")

        # depends_on
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, cfg in deps.items():
            if dep not in services:
                fail(f"{w}.depends_on", f"unknown service {dep!r}")
                continue
            cfg = cfg or {}
            unknown_keys(f"{w}.depends_on.{dep}", cfg, DEPENDS_KEYS)
            cond = cfg.get("condition", "service_started")
            if cond not in CONDITIONS:
                fail(f"{w}.depends_on.{dep}", f"unknown condition {cond!r}")
            if cond == "service_healthy" and not (services[dep] or {}).get("healthcheck"):
                fail(f"{w}.depends_on.{dep}", "service_healthy, but it has no healthcheck")

        if "restart" in svc and not re.fullmatch(
            r"no|always|unless-stopped|on-failure(:\d+)?", str(svc["restart"])
        ):
            fail(f"{w}.restart", f"unknown policy {svc['restart']!r}")
        if "stop_grace_period" in svc and seconds(svc["stop_grace_period"]) is None:
            fail(f"{w}.stop_grace_period", "not a duration")

    for v in volumes:
        if v not in used_volumes:
            fail(f"{where}: volumes.{v}", "declared but not used")
    for n, cfg in networks.items():
        for i, sub in enumerate(((cfg or {}).get("ipam") or {}).get("config") or []):
            try:
                ipaddress.ip_network(sub.get("subnet", ""))
            except ValueError:
                fail(f"{where}: networks.{n}.ipam.config[{i}]", f"bad subnet {sub!r}")
    return services


def shared_network(a: dict, b: dict) -> bool:
    return bool(service_networks(a).keys() & service_networks(b).keys())


# ---------------------------------------------------------------------------------------
# tokengate


def check_gateway(doc: dict, services: dict) -> dict:
    """Checks the gateway service and its config; returns facts for the other checks."""
    svc = services.get(GATEWAY)
    if not isinstance(svc, dict):
        return {}
    w = f"{rel(COMPOSE)}: services.{GATEWAY}"
    cmd = svc.get("command")
    if isinstance(cmd, str):
        cmd = cmd.split()
    cmd = [str(c) for c in as_list(cmd)]
    config = None
    for i, c in enumerate(cmd):
        if c == "--config" and i + 1 < len(cmd):
            config = cmd[i + 1]
        elif c.startswith("--config="):
            config = c.split("=", 1)[1]
    if not cmd or cmd[0] != "run" or config is None:
        fail(f"{w}.command", "must be ['run', '--config', <file>] (the image default uses conf/)")
        return {}
    if os.path.normpath(config) == IMAGE_DEFAULT_CONFIG:
        fail(f"{w}.command", f"{config} is the image's conf/ copy, not the compose config")
    host_cfg = to_host(svc, config)
    expected = DOCKER / "tokengate.compose.toml"
    if host_cfg is None:
        fail(f"{w}.command", f"--config {config} is not provided by a bind mount")
        return {}
    if host_cfg != expected.resolve():
        fail(f"{w}.command", f"--config {config} is {rel(host_cfg)}, expected {rel(expected)}")
    cfg = load_toml(host_cfg)
    if not isinstance(cfg, dict):
        return {}
    cw = rel(host_cfg)
    server = cfg.get("server") or {}
    listen = host_port(server.get("listen", "0.0.0.0:8080"))
    admin = host_port(server.get("admin_listen", ""))
    if not listen:
        fail(cw, f"server.listen {server.get('listen')!r} is not host:port")
    if not admin:
        fail(cw, "server.admin_listen must be set (health check and /metrics)")
        return {}
    if admin[0] in {"127.0.0.1", "localhost", "::1"}:
        fail(cw, "server.admin_listen is loopback-only: Prometheus cannot scrape it")
    targets = {}
    for i, p in enumerate(as_list(svc.get("ports"))):
        parsed = parse_port("", p)
        if parsed:
            targets[parsed[2]] = parsed
    for label, hp in (("listen", listen), ("admin_listen", admin)):
        if hp and hp[1] not in targets:
            fail(f"{w}.ports", f"server.{label} port {hp[1]} is not published")
    hc = json.dumps((svc.get("healthcheck") or {}).get("test", ""))
    if not re.search(rf":{admin[1]}/(healthz|readyz)\b", hc):
        fail(f"{w}.healthcheck", f"should query the admin port {admin[1]} (/healthz or /readyz)")

    # jwks_file: relative to the config, in the repository and in the container.
    for i, iss in enumerate(cfg.get("issuer") or []):
        jf = iss.get("jwks_file")
        if not jf:
            continue
        host = (host_cfg.parent / jf).resolve()
        if not host.is_file():
            fail(cw, f"issuer[{i}].jwks_file {jf!r}: {rel(host)} does not exist")
            continue
        in_container = PurePosixPath(config).parent / jf
        mapped = to_host(svc, in_container)
        if mapped is None or mapped.resolve() != host:
            fail(f"{w}.volumes", f"issuer[{i}].jwks_file resolves to {in_container} in the "
                                 f"container, which is not mounted from {rel(host)}")
        jwks = load_json(host)
        if isinstance(jwks, dict) and not (isinstance(jwks.get("keys"), list) and jwks["keys"]):
            fail(rel(host), "a JWKS needs a non-empty 'keys' array")

    # Upstreams are resolved at load: they must be fixed addresses of compose services.
    fixed: dict[str, tuple[str, str]] = {}
    for name, s in services.items():
        for net, ncfg in service_networks(s or {}).items():
            if isinstance(ncfg, dict) and ncfg.get("ipv4_address"):
                fixed[str(ncfg["ipv4_address"])] = (name, net)
    for i, route in enumerate(cfg.get("route") or []):
        for j, up in enumerate(route.get("upstream") or []):
            hp = host_port(up)
            where = f"{cw}: route[{i}].upstream[{j}]"
            if not hp:
                fail(where, f"{up!r} is not host:port")
                continue
            try:
                ip = ipaddress.ip_address(hp[0])
            except ValueError:
                fail(where, f"{up!r}: use a compose service's fixed ipv4_address; "
                            "names are resolved once at load and fail `tokengate check` outside compose")
                continue
            if str(ip) not in fixed:
                fail(where, f"{up!r}: no compose service has ipv4_address {ip}")
                continue
            target, net = fixed[str(ip)]
            if net not in service_networks(svc):
                fail(where, f"{target} is on network {net!r}, which {GATEWAY} is not on")
            subnets = [c.get("subnet") for c in
                       (((doc.get("networks") or {}).get(net) or {}).get("ipam") or {}).get("config") or []]
            if not any(ip in ipaddress.ip_network(sn) for sn in subnets if sn):
                fail(where, f"{ip} is outside network {net!r}'s ipam subnet")

    # The revocation store: [redis] urls must name a compose service the gateway can reach.
    for i, url in enumerate(((cfg.get("redis") or {}).get("urls")) or []):
        m = re.fullmatch(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/\d*)?", str(url))
        where = f"{cw}: redis.urls[{i}]"
        if not m:
            fail(where, f"{url!r} is not redis://host:port")
        elif m.group(1) not in services:
            fail(where, f"{url!r}: {m.group(1)!r} is not a compose service")
        elif not shared_network(svc, services[m.group(1)]):
            fail(where, f"{GATEWAY} and {m.group(1)} share no network")

    # Compose must wait longer than the gateway's drain.
    grace = seconds(server.get("grace_period", "5s")) or 0
    drain = seconds(server.get("shutdown_timeout", "20s")) or 0
    stop = seconds(svc.get("stop_grace_period", "10s"))
    if stop is not None and stop <= grace + drain:
        fail(f"{w}.stop_grace_period", f"{stop:g}s does not exceed grace_period + "
                                       f"shutdown_timeout ({grace + drain:g}s): SIGKILL mid-drain")
    return {"admin_port": admin[1]}


# ---------------------------------------------------------------------------------------
# Prometheus


def prometheus_listen_port(svc: dict) -> int:
    for c in as_list(svc.get("command")):
        m = re.match(r"--web\.listen-address=.*:(\d+)$", str(c))
        if m:
            return int(m.group(1))
    return 9090


def check_prometheus(services: dict, gw: dict) -> int:
    svc = services.get(PROMETHEUS)
    if not isinstance(svc, dict):
        return 0
    w = f"{rel(COMPOSE)}: services.{PROMETHEUS}"
    cfg_path = "/etc/prometheus/prometheus.yml"
    for c in as_list(svc.get("command")):
        if str(c).startswith("--config.file="):
            cfg_path = str(c).split("=", 1)[1]
    host = to_host(svc, cfg_path)
    expected = (DOCKER / "prometheus.yml").resolve()
    if host != expected:
        fail(f"{w}.volumes", f"Prometheus reads {cfg_path}, which is not mounted from {rel(expected)}")
    doc = load_yaml(expected)
    if not isinstance(doc, dict):
        return 0
    pw = rel(expected)
    jobs = doc.get("scrape_configs") or []
    names = [j.get("job_name") for j in jobs]
    if len(names) != len(set(names)):
        fail(pw, "duplicate job_name")
    want = f"{GATEWAY}:{gw.get('admin_port')}"
    found = False
    for j in jobs:
        for sc in j.get("static_configs") or []:
            for t in sc.get("targets") or []:
                hp = host_port(str(t))
                if not hp:
                    fail(pw, f"job {j.get('job_name')}: target {t!r} is not host:port")
                    continue
                if hp[0] == GATEWAY:
                    if str(t) == want and j.get("metrics_path", "/metrics") == "/metrics" \
                            and j.get("scheme", "http") == "http":
                        found = True
                    else:
                        fail(pw, f"job {j.get('job_name')}: target {t!r} (metrics_path "
                                 f"{j.get('metrics_path', '/metrics')}): expected {want} /metrics "
                                 "(the admin listener's port in the compose config)")
                elif hp[0] in services and not shared_network(svc, services[hp[0]]):
                    fail(pw, f"target {t!r}: {PROMETHEUS} and {hp[0]} share no network")
    if gw.get("admin_port") and not found:
        fail(pw, f"no scrape job targets {want}/metrics")
    if GATEWAY in services and not shared_network(svc, services[GATEWAY]):
        fail(w, f"{PROMETHEUS} and {GATEWAY} share no network")
    return len(jobs)


# ---------------------------------------------------------------------------------------
# Grafana


def check_grafana(services: dict, metrics: dict[str, str]) -> tuple[int, int, int, int, set]:
    svc = services.get(GRAFANA)
    used: set[str] = set()
    if not isinstance(svc, dict):
        return 0, 0, 0, 0, used
    w = f"{rel(COMPOSE)}: services.{GRAFANA}"
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    prov = PurePosixPath(env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))

    # Data sources.
    uids: set[str] = set()
    ds_dir = to_host(svc, prov / "datasources")
    ds_files = sorted(ds_dir.glob("*.y*ml")) if ds_dir and ds_dir.is_dir() else []
    if not ds_files:
        fail(w, f"no data source files mounted at {prov / 'datasources'}")
    prom = services.get(PROMETHEUS) or {}
    for f in ds_files:
        doc = load_yaml(f)
        if not isinstance(doc, dict):
            continue
        if doc.get("apiVersion") != 1:
            fail(rel(f), "apiVersion must be 1")
        for i, ds in enumerate(doc.get("datasources") or []):
            dw = f"{rel(f)}: datasources[{i}]"
            for k in ("name", "type", "uid", "url"):
                if not ds.get(k):
                    fail(dw, f"{k} missing")
            if ds.get("uid") in uids:
                fail(dw, f"duplicate uid {ds.get('uid')!r}")
            uids.add(ds.get("uid"))
            if ds.get("type") == "prometheus":
                m = re.fullmatch(r"https?://([^/:]+):(\d+)/?", str(ds.get("url", "")))
                port = prometheus_listen_port(prom) if prom else None
                if not m or m.group(1) != PROMETHEUS or int(m.group(2)) != port:
                    fail(dw, f"url {ds.get('url')!r}: expected http://{PROMETHEUS}:{port}")
    if PROMETHEUS in services and not shared_network(svc, services[PROMETHEUS]):
        fail(w, f"{GRAFANA} and {PROMETHEUS} share no network")

    # Dashboard providers.
    dash_files: list[Path] = []
    pr_dir = to_host(svc, prov / "dashboards")
    pr_files = sorted(pr_dir.glob("*.y*ml")) if pr_dir and pr_dir.is_dir() else []
    if not pr_files:
        fail(w, f"no dashboard provider files mounted at {prov / 'dashboards'}")
    for f in pr_files:
        doc = load_yaml(f)
        if not isinstance(doc, dict):
            continue
        if doc.get("apiVersion") != 1:
            fail(rel(f), "apiVersion must be 1")
        for i, p in enumerate(doc.get("providers") or []):
            pw = f"{rel(f)}: providers[{i}]"
            if p.get("type", "file") != "file":
                continue
            path = (p.get("options") or {}).get("path")
            host = to_host(svc, path) if path else None
            if host is None or not host.exists():
                fail(pw, f"options.path {path!r} is not mounted from an existing repository path")
                continue
            found = sorted(host.rglob("*.json")) if host.is_dir() else [host]
            if not found:
                fail(pw, f"{rel(host)} holds no dashboard JSON")
            dash_files += found
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        h = to_host(svc, home)
        if h is None or not h.is_file():
            fail(w, f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a mounted file")
    # Dashboards in the repository but not provisioned would silently never load.
    for f in sorted((DOCKER / "grafana" / "dashboards").rglob("*.json")):
        if f.resolve() not in {d.resolve() for d in dash_files}:
            fail(rel(f), "not loaded by any dashboard provider")

    series = series_names(metrics)
    n_panels = n_queries = 0
    seen_uids: set[str] = set()
    for f in dict.fromkeys(d.resolve() for d in dash_files):
        p, q = check_dashboard(f, uids, series, seen_uids, used)
        n_panels += p
        n_queries += q
    return len(uids), len(dash_files), n_panels, n_queries, used


def check_dashboard(path: Path, uids: set[str], series: dict[str, str], seen_uids: set[str],
                    used: set[str]) -> tuple[int, int]:
    dw = rel(path)
    text = path.read_text(encoding="utf-8")
    d = load_json(path)
    if not isinstance(d, dict):
        return 0, 0
    if "${DS_" in text or "__inputs" in d:
        fail(dw, "uses ${DS_...} import inputs; reference the provisioned data source by uid")
    sv = d.get("schemaVersion")
    if not isinstance(sv, int) or sv < 36:
        fail(dw, f"schemaVersion {sv!r}: must be >= 36")
    for k in ("uid", "title"):
        if not d.get(k):
            fail(dw, f"{k} missing")
    if d.get("uid") in seen_uids:
        fail(dw, f"dashboard uid {d.get('uid')!r} used twice")
    seen_uids.add(d.get("uid"))

    def ds_ok(where: str, ds, required: bool = True) -> None:
        if ds is None:
            if required:
                fail(where, "no datasource")
            return
        if not isinstance(ds, dict):
            fail(where, f"datasource {ds!r}: use {{'type': ..., 'uid': ...}}")
        elif ds.get("type") == "grafana" or ds.get("uid") in {"-- Grafana --", "grafana"}:
            return
        elif ds.get("uid") not in uids:
            fail(where, f"datasource uid {ds.get('uid')!r} is not provisioned ({sorted(uids)})")

    variables: set[str] = set()
    var_list = (d.get("templating") or {}).get("list") or []
    for v in var_list:
        variables.add(v.get("name"))
    for i, v in enumerate(var_list):
        vw = f"{dw}: templating[{v.get('name', i)}]"
        if v.get("type") != "query":
            continue
        ds_ok(vw, v.get("datasource"))
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        q = (q or "").strip()
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", q, re.S)
        if m:
            check_promql(vw, m.group(1), series, variables, used, selector_only=True)
        elif re.fullmatch(r"label_values\(\s*\w+\s*\)|label_names\(\)|metrics\(.*\)", q):
            pass
        else:
            m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
            check_promql(vw, m.group(1) if m else q, series, variables, used)

    ids: set[int] = set()
    n_panels = n_queries = 0

    def walk(panels: list) -> None:
        nonlocal n_panels, n_queries
        for p in panels:
            pid = p.get("id")
            pw = f"{dw}: panel {pid} {p.get('title', '')!r}"
            if not isinstance(pid, int) or pid in ids:
                fail(pw, "panel id missing or duplicated")
            ids.add(pid)
            gp = p.get("gridPos") or {}
            if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
                fail(pw, "gridPos needs integer h, w, x, y")
            elif gp["x"] + gp["w"] > 24:
                fail(pw, "gridPos exceeds the 24-column grid")
            if p.get("type") == "row":
                walk(p.get("panels") or [])
                continue
            n_panels += 1
            if not p.get("type"):
                fail(pw, "no type")
            ds_ok(pw, p.get("datasource"))
            targets = p.get("targets") or []
            if not targets:
                fail(pw, "no targets")
            refs = [t.get("refId") for t in targets]
            if len(refs) != len(set(refs)) or not all(refs):
                fail(pw, "target refIds missing or duplicated")
            for t in targets:
                n_queries += 1
                tw = f"{pw} target {t.get('refId')}"
                ds_ok(tw, t.get("datasource"), required=False)
                check_promql(tw, t.get("expr", ""), series, variables, used)
            walk(p.get("panels") or [])

    walk(d.get("panels") or [])
    if not n_panels:
        fail(dw, "no panels")
    for a in ((d.get("annotations") or {}).get("list") or []):
        ds_ok(f"{dw}: annotation {a.get('name')!r}", a.get("datasource"))
    return n_panels, n_queries


# ---------------------------------------------------------------------------------------


def main() -> int:
    if sys.version_info < (3, 11):
        print("docker/check.py: Python >= 3.11 is required", file=sys.stderr)
        return 2
    documented = readme_metrics()
    metrics = dict(documented)
    pending = []
    for name, kind in PENDING_METRICS.items():
        if name in documented:
            if documented[name] != kind:
                fail("README.md", f"{name} is a {documented[name]}, check.py expects a {kind}")
        else:
            metrics[name] = kind
            pending.append(name)

    doc = load_yaml(COMPOSE)
    services = check_compose(doc) if doc is not None else {}
    gw = check_gateway(doc, services) if services else {}
    jobs = check_prometheus(services, gw) if services else 0
    n_ds, n_dash, n_panels, n_queries, used = (
        check_grafana(services, metrics) if services else (0, 0, 0, 0, set())
    )

    if problems:
        print(f"docker/check.py: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    note = ""
    if pending:
        note = f"; not yet in README.md (allowed as pending): {', '.join(pending)}"
    print(
        f"docker/check.py: ok: {len(services)} services, {jobs} scrape jobs, {n_ds} data "
        f"source(s), {n_dash} dashboard(s) with {n_panels} panels / {n_queries} queries over "
        f"{len(used)} metric series, all documented{note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
