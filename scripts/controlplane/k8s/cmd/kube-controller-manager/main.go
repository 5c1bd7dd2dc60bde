// Command kube-controller-manager is upstream's, run with only the controllers whose behaviour the
// scheduler's tests need from a real cluster (PodDisruptionBudget status; later, volume binding).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream's main registers them
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
