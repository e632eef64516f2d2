"""The Shepherd Model Gateway (smg, sglang-router's successor) as a stack's gateway: the flag tables are the wheels'
own parsers, the platform's command runs smg's launcher with the same flags and smg reads them as meant, its
launcher's switch to IGW mode with discovery (and what that costs a PD gateway), PD mode, metric names, the rules
that keep what smg would ignore out of extraArgs, and which gateway an image runs (facts/gateways)."""

from __future__ import annotations

import json
import zipfile

import pytest
from conftest import API_KEY, ROOT, container, run_with, unavailable
from promql import grafana_to_promql, known_metrics, metric_names

from sglang_platform.config import ConfigError, validate
from sglang_platform.facts.gateways import RELEASES, facts, load_gateway_table, product_of_image, shipped_gateway_tables
from tools import gateway_flags, harness

SMG = "lightseekorg/smg:1.13.0"
METRICS = ROOT / "facts" / "metrics"


def on_smg(values: dict) -> None:
    values.setdefault("versions", {})["gatewayImage"] = SMG


def gateway_container(result, name: str) -> dict:
    return container(result.k8s_object("Deployment", name)["spec"]["template"])


def parser(product: str, version: str) -> gateway_flags.RouterParser:
    try:
        return gateway_flags.load(version, product=product)
    except FileNotFoundError as missing:
        unavailable(str(missing))


def wheel_file(product: str, version: str, name: str) -> str:
    wheel = gateway_flags.wheel_for(version, product=product)
    if wheel is None:
        unavailable(f"no {product} {version} wheel: python tools/gateway_flags.py fetch")
    assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")


# --- the tables ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("product", "version"), shipped_gateway_tables())
def test_each_shipped_table_is_its_wheels_parser(product, version):
    """facts/gateways/<product>-<version>.json is exactly what tools/gateway_flags.py generates from the wheel."""
    if gateway_flags.wheel_for(version, product=product) is None:
        unavailable(f"no {product} {version} wheel: python tools/gateway_flags.py fetch")
    shipped = json.loads((ROOT / "facts" / "gateways" / f"{product}-{version}.json").read_text())
    assert shipped == gateway_flags.build_table(product, version)


def test_both_tables_have_every_flag_the_platform_writes():
    from sglang_platform.render.gateway_args import DECIDED, FLAG_KEYS

    for product, version in shipped_gateway_tables():
        table = load_gateway_table(product, version)
        assert table is not None
        assert set(FLAG_KEYS) <= set(table.by_string), product
        assert table.product == product and table.release == version
    smg = load_gateway_table("smg", "1.13.0")
    assert smg is not None
    # smg's own discovery and model-id options, which the platform decides for it.
    assert {"--discovery-provider", "--model-id-from"} <= set(smg.by_string)
    assert set(DECIDED) - set(smg.by_string) == {"--mini-lb"}


def test_every_row_of_facts_has_its_table_and_metric_list():
    assert {(r.product, r.release) for r in RELEASES} == set(shipped_gateway_tables())
    for row in RELEASES:
        assert (METRICS / row.metrics).is_file(), row.metrics
    assert facts("smg", "1.14.0").release == "1.13.0"  # a newer release gets its predecessor's row


# --- a stack on smg -----------------------------------------------------------------------------------------------


def test_a_stack_on_smg_runs_smgs_launcher_with_the_same_flags():
    router = run_with("dev", lambda v: None)
    smg = run_with("dev", on_smg)
    assert smg.error is None, smg.error
    before, after = (gateway_container(r, "qwen-small-gateway") for r in (router, smg))
    assert before["command"] == ["python3", "-m", "sglang_router.launch_router"]
    assert after["command"] == ["python3", "-m", "smg.launch_router"]
    assert after["image"] == SMG
    assert after["args"] == before["args"]
    # The same non-root user: smg's Dockerfile runs as 65532 (USER smg) like the platform's pod spec.
    assert after["securityContext"] == before["securityContext"]


def test_smg_reads_the_platforms_flags_as_meant():
    args = gateway_container(run_with("dev", on_smg), "qwen-small-gateway")["args"]
    smg = parser("smg", "1.13.0")
    assert smg.check(args) == []
    parsed = smg.parse(args)
    assert parsed.selected_discovery_provider() == "kubernetes"
    assert parsed.selector == {
        "app.kubernetes.io/name": "sglang",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
        "sglang-platform.io/model": "qwen2.5-1.5b-instruct",
    }
    assert (parsed.service_discovery_namespace, parsed.service_discovery_port) == ("$(POD_NAMESPACE)", 8000)
    assert (parsed.policy, parsed.health_check_endpoint, parsed.health_check_interval_secs) == (
        "cache_aware",
        "/ready",
        15,
    )
    assert (parsed.prometheus_port, parsed.request_timeout_secs, parsed.pd_disaggregation) == (29000, 1800, False)
    # From the launcher's from_cli_args, fixed: the prefill bootstrap port annotation the prefill leaders carry.
    assert parsed.bootstrap_port_annotation == "sglang.ai/bootstrap-port"


def test_smgs_launcher_switches_to_igw_with_discovery_and_the_routers_does_not():
    """The fact that decides what smg lacks (docs/gateway.md): read in each wheel's launch_router.py."""
    smg = wheel_file("smg", "1.13.0", "smg/launch_router.py")
    router = wheel_file("sglang-router", "0.3.2", "sglang_router/launch_router.py")
    switch = "IGW mode automatically enabled because service discovery is turned on"
    assert switch in smg and "router_args.enable_igw = True" in smg
    assert switch not in router
    assert facts("smg", "1.13.0").discovery_enables_igw and not facts("sglang-router", "0.3.2").discovery_enables_igw


def test_pd_mode_on_smg():
    def pd_on_smg(values):
        on_smg(values)

    result = run_with("pd-h200", pd_on_smg, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    (gateway,) = [
        o
        for o in harness.kubernetes_objects(result)
        if o["kind"] == "Deployment" and "gateway" in o["metadata"]["name"]
    ]
    args = container(gateway["spec"]["template"])["args"]
    parsed = parser("smg", "1.13.0").parse(args)
    assert parsed.pd_disaggregation is True and parsed.selector == {}
    assert parsed.prefill_selector["sglang-platform.io/pd-role"] == "prefill"
    assert parsed.decode_selector["sglang-platform.io/pd-role"] == "decode"
    assert (
        parsed.prefill_selector["sglang-platform.io/pd-revision"]
        == parsed.decode_selector["sglang-platform.io/pd-revision"]
    )


def test_the_dashboard_and_alerts_use_only_names_smg_exports():
    result = run_with("dev", on_smg)
    board = json.loads(result.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    exprs = [grafana_to_promql(t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    rules = result.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    exprs += [r["expr"] for g in rules for r in g["rules"]]
    used = set().union(*(metric_names(e) for e in exprs))
    gateway = {n for n in used if n.startswith("smg_")}
    assert gateway, "the gateway row and alerts use smg_* series"
    assert gateway <= known_metrics("0.5.23", gateway="smg-1.13.0.txt")
    # smg's list holds every name of 0.3.2's (what makes the dashboard the same for both).
    lists = [
        {line.split()[0] for line in (METRICS / name).read_text().splitlines() if line and not line.startswith("#")}
        for name in ("sgl-model-gateway.txt", "smg-1.13.0.txt")
    ]
    assert lists[0] <= lists[1]


def test_smgs_metric_list_is_in_its_wheel():
    from tools.metric_names import gateway_metrics

    wheel = gateway_flags.wheel_for("1.13.0", product="smg")
    if wheel is None:
        unavailable("no smg 1.13.0 wheel: python tools/gateway_flags.py fetch")
    listed = {
        line.split()[0]: line.split()[1]
        for line in (METRICS / "smg-1.13.0.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    source = "\n".join(
        f'describe_{"histogram" if kind in ("histogram", "summary") else kind}!("{name}", "x");'
        for name, kind in listed.items()
    )
    found, missing = gateway_metrics(source, str(wheel))
    assert missing == []
    assert set(found) == set(listed)


# --- rules --------------------------------------------------------------------------------------------------------


def problems(mutate) -> list[str]:
    from conftest import stack_values

    raw = stack_values("dev")
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        validate(raw, {"webuiSecretKey", "grafanaAdminPassword"})
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_extra_args_are_read_by_smgs_parser():
    def extra(values):
        on_smg(values)
        values["gateway"]["extraArgs"] = [
            "--prefill-policy",
            "random",
            "--model-id-from",
            "namespace",
            "--max-concurent-requests",
            "8",
            "--pol",
            "random",
        ]

    assert problems(extra) == [
        "sglang-platform:gateway.extraArgs[0]: --prefill-policy is ignored by smg 1.13.0 with Kubernetes discovery "
        "(its launcher turns on IGW mode, whose PD router takes gateway.policy for both roles): remove it, or pin "
        "sglang-router 0.3.2 for a policy per role (docs/gateway.md)",
        "sglang-platform:gateway.extraArgs[2]: --model-id-from is set by the platform itself: remove it",
        "sglang-platform:gateway.extraArgs[4]: --max-concurent-requests is not an option of smg 1.13.0 (did you mean "
        "--max-concurrent-requests?)",
        "sglang-platform:gateway.extraArgs[6]: --pol is an abbreviation of --policy, which the platform sets from "
        "gateway.policy: use that key",
    ]

    wanted = ["--max-concurrent-requests", "256", "--queue-size", "64"]

    def good(values):
        on_smg(values)
        values["gateway"]["extraArgs"] = list(wanted)

    result = run_with("dev", good)
    assert result.error is None, result.error
    args = gateway_container(result, "qwen-small-gateway")["args"]
    assert args[-4:] == wanted
    assert parser("smg", "1.13.0").check(args) == []


@pytest.mark.parametrize(
    ("image", "product"),
    [
        ("lmsysorg/sgl-model-gateway:v0.3.2", "sglang-router"),
        ("lmsysorg/sglang-router:v0.2.4", "sglang-router"),
        ("lightseekorg/smg:1.13.0", "smg"),
        ("registry.local:5000/mirror/smg@sha256:" + "a" * 64, "smg"),
        ("registry.local/gateway:1.13.0", None),
    ],
)
def test_which_gateway_an_image_runs(image, product):
    assert product_of_image(image) == product


def test_a_mirror_under_another_name_says_which_gateway_it_is():
    def mirror(values):
        values["versions"] = {"gatewayImage": "registry.local/gateway:1.13.0"}

    assert problems(mirror) == [
        "sglang-platform:versions.gatewayProduct: cannot tell which gateway 'registry.local/gateway:1.13.0' runs: set "
        "versions.gatewayProduct to sglang-router or smg, so its flags are checked against that gateway's parser"
    ]

    def declared(values):
        values["versions"] = {"gatewayImage": "registry.local/gateway:1.13.0", "gatewayProduct": "smg"}

    result = run_with("dev", declared)
    assert result.error is None, result.error
    assert gateway_container(result, "qwen-small-gateway")["command"] == ["python3", "-m", "smg.launch_router"]

    def contradiction(values):
        values["versions"] = {"gatewayImage": SMG, "gatewayProduct": "sglang-router"}

    assert problems(contradiction) == [
        "sglang-platform:versions.gatewayProduct: sglang-router contradicts versions.gatewayImage "
        "'lightseekorg/smg:1.13.0', which is smg's: remove versions.gatewayProduct (it is only for images whose name "
        "says neither)"
    ]


def test_a_gateway_release_without_a_table_is_refused_with_the_command_that_makes_it():
    def older(values):
        values["versions"] = {"gatewayImage": "lightseekorg/smg:1.12.0"}

    assert problems(older) == [
        "sglang-platform:versions.gatewayImage: no flag table for smg 1.12.0 is shipped: run `python "
        "tools/gateway_flags.py generate smg 1.12.0` and commit facts/gateways/smg-1.12.0.json"
    ]
