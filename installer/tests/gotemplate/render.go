// Renders a CNI conf template the way containerd's CRI plugin does (pkg/cri/server/update_runtime_config.go):
// Go's text/template over {PodCIDR, PodCIDRRanges, Routes}. Usage: go run render.go TEMPLATE CIDR...
package main

import (
	"os"
	"text/template"
)

type cniConfigTemplate struct {
	PodCIDR       string
	PodCIDRRanges []string
	Routes        []string
}

func main() {
	t, err := template.ParseFiles(os.Args[1])
	if err != nil {
		panic(err)
	}
	data := cniConfigTemplate{PodCIDR: os.Args[2], PodCIDRRanges: os.Args[2:]}
	for _, cidr := range os.Args[2:] {
		route := "0.0.0.0/0"
		for _, c := range cidr {
			if c == ':' {
				route = "::/0"
			}
		}
		data.Routes = append(data.Routes, route)
	}
	if err := t.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
