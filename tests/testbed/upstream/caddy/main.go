// The caddy command with the layer4 app and its TCP proxy compiled in, as xcaddy would build
// it: provisioner's node-local API load balancer (TCP passthrough to every API server, with
// active health checks).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
)

func main() { caddycmd.Main() }
