"""Stack keys of the observability stack (``sglang-platform:monitoring``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .base import Base, ChartMirror, DnsLabel, Quantity, mirror_field, values_field

# Prometheus duration (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#duration).
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]


class PrometheusSettings(Base):
    retention: Duration = Field("15d", description="How long samples are kept (prometheusSpec.retention).")
    retention_size: str | None = Field(
        None, pattern=r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$", description="Cap on the TSDB size, e.g. 45GB."
    )
    storage_size: Quantity = Field("50Gi", description="Size of Prometheus' volume.")
    storage_class: str | None = Field(None, description="StorageClass of the volume; unset uses the default.")
    scrape_interval: Duration = Field("15s", description="How often the SGLang and DCGM endpoints are scraped.")


class GrafanaSettings(Base):
    admin_user: str = Field("admin", min_length=1, description="Grafana admin login (password: grafanaAdminPassword).")
    storage_size: Quantity | None = Field(
        None, description="Persist Grafana's database on a volume of this size; unset keeps it in the pod."
    )


class Slo(Base):
    ttft_p99_seconds: float = Field(
        0.2,
        gt=0,
        le=600,
        description="Alert when the p99 time to first token of a model exceeds this; a benchmark above it fails.",
    )
    min_request_throughput: float = Field(
        200.0,
        gt=0,
        le=1_000_000,
        description="A benchmark that finishes fewer requests per second fails (the reference's QPS >= 200).",
    )
    itl_p99_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="A benchmark with a p99 inter-token latency above this fails, and the decode role of a "
        "disaggregated service alerts above it (unset: no limit, no such alert).",
    )
    e2e_p99_seconds: float | None = Field(
        None,
        gt=0,
        le=86_400,
        # to_camel would spell it e2EP99Seconds.
        alias="e2eP99Seconds",
        description="A benchmark whose p99 end-to-end latency is above this fails (unset: none).",
    )
    window: Duration = Field("5m", description="Rate window the latency and queue alerts evaluate over.")
    queue_backlog_requests: int = Field(
        10, ge=0, description="Queued requests above which a still-growing queue alerts (SGLangQueueBacklogGrowing)."
    )
    kv_cache_usage_ratio: float = Field(
        0.95, gt=0, le=1, description="Alert when the KV-cache token usage of a model stays above this fraction."
    )
    gpu_temperature_celsius: int = Field(85, ge=40, le=120, description="Alert when a GPU stays hotter than this.")
    gateway_error_ratio: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Alert when more than this share of the gateway's requests to the groups fail (5xx).",
    )
    kv_transfer_p99_milliseconds: float = Field(
        500,
        gt=0,
        le=600_000,
        description="Disaggregated services: alert when the p99 time to move a request's KV cache from prefill "
        "to decode exceeds this (sglang:kv_transfer_latency_ms, SGLang 0.5.23).",
    )
    for_duration: Duration = Field("5m", description="How long a condition must hold before an alert fires.")


class DcgmScrape(Base):
    enabled: bool = Field(
        True,
        description="Create the ServiceMonitor for the GPU Operator's dcgm-exporter; turn off if the GPU "
        "Operator creates its own (dcgmExporter.serviceMonitor.enabled).",
    )
    namespace: DnsLabel = Field("gpu-operator", description="Namespace of the nvidia-dcgm-exporter Service.")


class MonitoringConfig(Base):
    enabled: bool = Field(False, description="Install kube-prometheus-stack, the SGLang monitors, dashboard, alerts.")
    namespace: DnsLabel = Field("monitoring", description="Namespace of Prometheus, Grafana and Alertmanager.")
    retain_on_destroy: bool = Field(
        True,
        description="Keep the monitoring namespace and the volumes in it (Prometheus' metrics, Grafana's data) "
        "when the stack is destroyed.",
    )
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    slo: Slo = Field(default_factory=Slo)
    dcgm: DcgmScrape = Field(default_factory=DcgmScrape)
    values: dict[str, Any] = values_field()
    chart_mirror: ChartMirror = mirror_field()
