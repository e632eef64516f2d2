"""The checks that read something at ``pulumi preview``, before any resource is registered: the cluster
(``cluster``), a model's config.json on its hub or in S3 (``config_json``), the S3 prefixes (``s3``). What
they read is judged by pure rules (``rules.cluster``, ``rules.quantization``)."""
