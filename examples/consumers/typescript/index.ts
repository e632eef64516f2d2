import * as pulumi from "@pulumi/pulumi";
import * as sglang from "@pulumi/sglang-platform";

const config = new pulumi.Config();
const qwen = new sglang.SglangInferenceGroup("qwen", {
    namespace: "team-a",
    image: "lmsysorg/sglang:v0.5.23-cu130",
    apiKey: config.requireSecret("apiKey"),
    config: {
        name: "qwen",
        model: { path: "Qwen2.5-1.5B-Instruct", servedName: "qwen", trustRemoteCode: false },
        modelVolume: { type: "hostPath", hostPath: "/models" },
        gpusPerNode: 1,
        resources: { cpu: "8", memory: "32Gi", shmSize: "8Gi" },
    },
});
const gateway = new sglang.SglangGateway("qwen-gateway", {
    namespace: "team-a",
    servedModelName: "qwen",
    apiKeySecretName: qwen.apiKeySecretName,
    sglangRelease: "0.5.23",
    config: { policy: "round_robin" },
});
export const baseUrl = gateway.baseUrl;
