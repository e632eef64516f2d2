"""Pure builders of what gets deployed: SGLang's and the gateway's command lines, an inference group's pod
specs, the alerting rules, the Grafana dashboard, where each chart comes from. They return plain dicts and
strings; the components register them as resources."""
