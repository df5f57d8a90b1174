// Command fieldlist prints the keys of containerd's configuration file, at the config version the
// containerd built from this module writes (version.ConfigVersion: 3 in 2.2, 4 from 2.3), that it
// accepts: the top-level keys from the server's Config type,
// and under plugins.'<type>.<id>' the config type of every plugin registered in the containerd
// binary (the same builtins its main links), walked with reflection over their `toml` tags.
//
// With -config-version it prints only that number. Output, in the format of
// tests/fixtures/k8s/v1.<minor>/config/containerd-config-v<N>.txt:
//
//	<TOML key path><TAB><value kind>
//
// '*' stands for any one key of a map (a runtime name, a registry host, ...).
package main

import (
	"encoding"
	"flag"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	srvconfig "github.com/containerd/containerd/v2/cmd/containerd/server/config"
	ctdversion "github.com/containerd/containerd/v2/version"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
)

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func main() {
	onlyVersion := flag.Bool("config-version", false, "print the config version only")
	flag.Parse()
	if *onlyVersion {
		fmt.Println(ctdversion.ConfigVersion)
		return
	}
	version := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "github.com/containerd/containerd/v2" {
				version = d.Version
			}
		}
	}
	fmt.Printf("# containerd configuration keys, config file version = %d (containerd %s); files of older versions are migrated to it on load\n",
		ctdversion.ConfigVersion, version)
	fmt.Printf("# source: github.com/containerd/containerd/v2 %s: cmd/containerd/server/config.Config and the Config of every\n", version)
	fmt.Printf("# plugin registered by cmd/containerd/builtins, walked with reflection by tests/testbed/upstream/containerd/fieldlist;\n")
	fmt.Printf("# runtimes.*.options: the runc shim's options (github.com/containerd/containerd/api/types/runc/options.Options)\n")
	fmt.Printf("# format: <TOML key path><TAB><value kind>\n")

	var lines []string
	emit := func(path, kind string) { lines = append(lines, path+"\t"+kind) }
	walkStruct(emit, "", reflect.TypeFor[srvconfig.Config]())

	regs := registry.Graph(func(*plugin.Registration) bool { return false })
	seen := map[string]bool{}
	for _, r := range regs {
		if r.Config == nil {
			continue
		}
		key := "plugins.'" + r.URI() + "'"
		if seen[key] {
			continue
		}
		seen[key] = true
		emit(key, "table")
		walkStruct(emit, key, deref(reflect.TypeOf(r.Config)))
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func tomlName(f reflect.StructField) (name string, inline bool, ok bool) {
	tag := f.Tag.Get("toml")
	if tag == "-" {
		return "", false, false
	}
	name, _, _ = strings.Cut(tag, ",")
	if name == "" && f.Anonymous && deref(f.Type).Kind() == reflect.Struct {
		return "", true, true
	}
	if !f.IsExported() {
		return "", false, false
	}
	if name == "" {
		name = f.Name
	}
	return name, false, true
}

func walkStruct(emit func(string, string), prefix string, t reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, inline, ok := tomlName(f)
		if !ok {
			continue
		}
		if inline {
			walkStruct(emit, prefix, deref(f.Type))
			continue
		}
		path := name
		if strings.ContainsAny(name, ".'\" ") {
			path = "'" + name + "'"
		}
		if prefix != "" {
			path = prefix + "." + path
		}
		walkValue(emit, path, f.Type)
	}
}

func walkValue(emit func(string, string), path string, t reflect.Type) {
	t = deref(t)
	emit(path, kindOf(t))
	switch {
	case kindOf(t) != "table":
	case t.Kind() == reflect.Struct:
		walkStruct(emit, path, t)
	case t.Kind() == reflect.Map:
		if strings.HasSuffix(path, ".options") && t.Elem().Kind() == reflect.Interface {
			// Runtime options are decoded into the runtime's options type; for runc (the
			// only runtime the provisioner configures) that is runc's Options message.
			walkStruct(emit, path, reflect.TypeFor[runcoptions.Options]())
			return
		}
		walkValue(emit, path+".*", t.Elem())
	}
}

func kindOf(t reflect.Type) string {
	t = deref(t)
	if t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "string"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "table"
	case reflect.Slice, reflect.Array:
		return "[]" + kindOf(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Interface:
		return "any"
	}
	return t.Kind().String()
}
