// Command fieldlist writes the field lists of the Kubernetes config kinds the provisioner renders,
// walking the real Go API types with reflection, in the format of tests/fixtures/k8s/v1.<minor>/config:
//
//	<json field path><TAB><type>
//
// '[]' marks a list element and '.*' a map value. Types are printed as the kubernetes.io config
// reference prints them: meta/v1.X and core/v1.X for apimachinery's meta/v1 and core/v1 types,
// the bare name for any other named type, and pointers are dereferenced.
//
// Usage: fieldlist OUTDIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	schedulerv1 "k8s.io/kube-scheduler/config/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

const (
	metaPkg = "k8s.io/apimachinery/pkg/apis/meta/v1"
	corePkg = "k8s.io/api/core/v1"
)

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

type kind struct {
	obj        any
	gv         schema.GroupVersion
	apiVersion string // as written in the file when it differs from gv (the kubeconfig's "v1")
	module     string
	pkg        string
	note       string
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fieldlist OUTDIR")
		os.Exit(2)
	}
	out := os.Args[1]
	kinds := []kind{
		{obj: &kubeletv1beta1.KubeletConfiguration{}, gv: kubeletv1beta1.SchemeGroupVersion, module: "k8s.io/kubelet", pkg: "config/v1beta1"},
		{obj: &kubeproxyv1alpha1.KubeProxyConfiguration{}, gv: kubeproxyv1alpha1.SchemeGroupVersion, module: "k8s.io/kube-proxy", pkg: "config/v1alpha1"},
		{obj: &schedulerv1.KubeSchedulerConfiguration{}, gv: schedulerv1.SchemeGroupVersion, module: "k8s.io/kube-scheduler", pkg: "config/v1"},
		{obj: &apiserverv1.EncryptionConfiguration{}, gv: apiserverv1.SchemeGroupVersion, module: "k8s.io/apiserver", pkg: "pkg/apis/apiserver/v1"},
		{obj: &auditv1.Policy{}, gv: auditv1.SchemeGroupVersion, module: "k8s.io/apiserver", pkg: "pkg/apis/audit/v1"},
		{obj: &clientcmdv1.Config{}, gv: clientcmdv1.SchemeGroupVersion, apiVersion: "v1 (clientcmd kubeconfig)", module: "k8s.io/client-go", pkg: "tools/clientcmd/api/v1"},
	}
	versions := moduleVersions()
	for _, k := range kinds {
		t := reflect.TypeOf(k.obj).Elem()
		apiVersion := k.apiVersion
		if apiVersion == "" {
			apiVersion = k.gv.String()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# apiVersion: %s\n# kind: %s\n", apiVersion, t.Name())
		fmt.Fprintf(&b, "# source: %s %s %s (Go type %s.%s), walked with reflection by tests/testbed/upstream/kubernetes/fieldlist\n",
			k.module, versions[k.module], k.pkg, t.PkgPath(), t.Name())
		b.WriteString("# format: <json field path><TAB><type>; '[]' = list element, '.*' = map value; types as the reference docs print them\n")
		walkStruct(&b, "", t, map[reflect.Type]bool{})
		write(filepath.Join(out, t.Name()+".txt"), b.String())
	}
	writePluginArgs(out, versions)
}

// writePluginArgs lists every *Args kind of the scheduler's config group: the plugin arguments
// usable in profiles[].pluginConfig[].args, as `Kind:path<TAB>type` under a `# kind:` line.
func writePluginArgs(out string, versions map[string]string) {
	scheme := runtime.NewScheme()
	if err := schedulerv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var names []string
	known := scheme.KnownTypes(schedulerv1.SchemeGroupVersion)
	for name := range known {
		if strings.HasSuffix(name, "Args") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "# apiVersion: %s\n", schedulerv1.SchemeGroupVersion)
	fmt.Fprintf(&b, "# plugin argument kinds usable in profiles[].pluginConfig[].args (k8s.io/kube-scheduler %s config/v1, the *Args kinds of its scheme)\n",
		versions["k8s.io/kube-scheduler"])
	for _, name := range names {
		fmt.Fprintf(&b, "# kind: %s\n", name)
		var fields strings.Builder
		walkStruct(&fields, "", known[name], map[reflect.Type]bool{})
		for _, l := range strings.SplitAfter(fields.String(), "\n") {
			if l == "" || strings.HasPrefix(l, "apiVersion\t") || strings.HasPrefix(l, "kind\t") {
				continue
			}
			b.WriteString(name + ":" + l)
		}
	}
	write(filepath.Join(out, "KubeSchedulerConfiguration.pluginargs.txt"), b.String())
}

func write(path string, text string) {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// moduleVersions: the version of every module linked into this program.
func moduleVersions() map[string]string {
	v := map[string]string{}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Replace != nil {
				v[d.Path] = d.Replace.Version
			} else {
				v[d.Path] = d.Version
			}
		}
	}
	return v
}

// jsonName: the key encoding/json uses for a field, whether it is inlined, and whether it is
// serialized at all.
func jsonName(f reflect.StructField) (name string, inline bool, ok bool) {
	if !f.IsExported() && !f.Anonymous {
		return "", false, false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if strings.Contains(","+opts+",", ",inline,") {
		return "", true, true
	}
	if name == "" {
		if f.Anonymous && deref(f.Type).Kind() == reflect.Struct {
			return "", true, true
		}
		if !f.IsExported() {
			return "", false, false
		}
		name = f.Name
	}
	return name, false, true
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func walkStruct(b *strings.Builder, prefix string, t reflect.Type, seen map[reflect.Type]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, inline, ok := jsonName(f)
		if !ok {
			continue
		}
		if inline {
			walkStruct(b, prefix, deref(f.Type), seen)
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		walkValue(b, path, f.Type, t.PkgPath(), seen)
	}
}

// walkValue prints path and its type, then what lies inside it.
// ctx is the package of the struct holding the field: types of other packages are qualified.
func walkValue(b *strings.Builder, path string, t reflect.Type, ctx string, seen map[reflect.Type]bool) {
	t = deref(t)
	fmt.Fprintf(b, "%s\t%s\n", path, typeName(t, ctx))
	if opaque(t) || seen[t] {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		seen[t] = true
		walkStruct(b, path, t, seen)
		delete(seen, t)
	case reflect.Slice, reflect.Array:
		if e := deref(t.Elem()); interesting(e) {
			walkInside(b, path+"[]", e, ctx, seen)
		}
	case reflect.Map:
		if e := deref(t.Elem()); interesting(e) {
			walkInside(b, path+".*", e, ctx, seen)
		}
	}
}

// walkInside: the fields of a list element or map value (the element itself is not a key).
func walkInside(b *strings.Builder, path string, t reflect.Type, ctx string, seen map[reflect.Type]bool) {
	if seen[t] {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		seen[t] = true
		walkStruct(b, path, t, seen)
		delete(seen, t)
	default:
		walkValue(b, path, t, ctx, seen)
	}
}

// interesting: an element type with keys of its own.
func interesting(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return !opaque(t)
	case reflect.Slice, reflect.Map:
		return interesting(deref(t.Elem()))
	}
	return false
}

// opaque: types written as one value, not as an object of fields: the meta/v1 types (Duration,
// Time, ObjectMeta as the reference pages show it) and any type with its own JSON decoding.
func opaque(t reflect.Type) bool {
	if t.PkgPath() == metaPkg {
		return true
	}
	if t.Kind() == reflect.Struct && (t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler)) {
		return true
	}
	return false
}

func typeName(t reflect.Type, ctx string) string {
	t = deref(t)
	if t.Name() != "" && t.PkgPath() != ctx {
		switch t.PkgPath() {
		case metaPkg:
			return "meta/v1." + t.Name()
		case corePkg:
			return "core/v1." + t.Name()
		}
	}
	if t.Name() != "" {
		return t.Name()
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Elem().Name() == "uint8" {
			return "[]byte"
		}
		return "[]" + typeName(t.Elem(), ctx)
	case reflect.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), typeName(t.Elem(), ctx))
	case reflect.Map:
		return "map[" + typeName(t.Key(), ctx) + "]" + typeName(t.Elem(), ctx)
	case reflect.Interface:
		return "any"
	}
	return t.String()
}
