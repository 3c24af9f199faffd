// Command etcd is etcd's server, built from the go.etcd.io/etcd/server/v3 module pinned in
// this module's go.mod. The published etcd command lives in a module with replace
// directives, which cannot be built as a dependency; its main is this one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
