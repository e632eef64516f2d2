// One inference group and its model gateway, from a Go program (docs/library.md, "From TypeScript, Go or YAML").
// `pulumi package add <sglang-platform checkout or github.com/<org>/sglang-platform/provider@vX.Y.Z>` generates
// the SDK into sdks/sglang-platform and adds its replace to go.mod.
package main

import (
	"example.com/pulumi-sglang-platform/sdk/go/sglangplatform"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		qwen, err := sglangplatform.NewSglangInferenceGroup(ctx, "qwen", &sglangplatform.SglangInferenceGroupArgs{
			Namespace: pulumi.String("team-a"),
			Image:     pulumi.String("lmsysorg/sglang:v0.5.23-cu130"),
			ApiKey:    config.RequireSecret(ctx, "apiKey"),
			Config: sglangplatform.InferenceGroupArgs{
				Name: "qwen",
				Model: &sglangplatform.ModelArgs{
					Path: pulumi.StringRef("Qwen2.5-1.5B-Instruct"), ServedName: pulumi.StringRef("qwen"),
					TrustRemoteCode: pulumi.BoolRef(false),
				},
				ModelVolume: sglangplatform.ModelVolumeArgs{
					Type: sglangplatform.ModelVolumeTypeHostPath, HostPath: pulumi.StringRef("/models"),
				},
				GpusPerNode: pulumi.IntRef(1),
				Resources: &sglangplatform.ResourcesArgs{
					Cpu: "8", Memory: "32Gi", ShmSize: pulumi.StringRef("8Gi"),
				},
			},
		})
		if err != nil {
			return err
		}
		policy := sglangplatform.GatewayPolicyRoundRobin
		gateway, err := sglangplatform.NewSglangGateway(ctx, "qwen-gateway", &sglangplatform.SglangGatewayArgs{
			Namespace:        pulumi.String("team-a"),
			ServedModelName:  "qwen",
			ApiKeySecretName: qwen.ApiKeySecretName,
			SglangRelease:    pulumi.StringRef("0.5.23"),
			Config:           &sglangplatform.GatewayConfigArgs{Policy: &policy},
		})
		if err != nil {
			return err
		}
		ctx.Export("baseUrl", gateway.BaseUrl)
		return nil
	})
}
