// Command flagtypes prints the type of each flag etcd's embed.Config registers, as
// `--name<TAB>type`: etcd's --help shows defaults but no types, so gen-fixtures.sh takes the flag
// names from the real binary's --help and their types from here.
package main

import (
	"flag"
	"fmt"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	embed.NewConfig().AddFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Printf("--%s\t%s\n", f.Name, typeName(f.Value))
	})
}

// typeName: the Go flag package's value types by the names pflag would print; any other value
// type by its Go name without "Value".
func typeName(v flag.Value) string {
	t := fmt.Sprintf("%T", v)
	t = strings.TrimPrefix(t, "*")
	if pkg, name, ok := strings.Cut(t, "."); ok {
		t = name
		if pkg == "flag" {
			return strings.TrimSuffix(name, "Value")
		}
	}
	return strings.TrimSuffix(t, "Value")
}
