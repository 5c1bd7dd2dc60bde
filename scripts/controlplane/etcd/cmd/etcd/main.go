// Command etcd is the upstream etcd server, kept in a module of its own so its dependency versions
// do not drag those of the Kubernetes module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
