// A read-only OCI registry for the test bed, standing in for an air-gapped site's mirror:
// go-containerregistry's registry (pkg/registry), filled at start from OCI image archives and
// served over HTTPS, answering reads only.
//
//	registry --listen ADDR --cert FILE --key FILE REPOSITORY:TAG=ARCHIVE...
//
// Each ARCHIVE is an OCI image layout in a tar holding one image, as the test bundle's images
// are; it is served as REPOSITORY:TAG with the archive's own manifest, so its digest is the
// same. The registry prints "ready" once it listens.
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	listen := flag.String("listen", "", "address to serve HTTPS on, host:port")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "its private key (PEM)")
	flag.Parse()
	if *listen == "" || *cert == "" || *key == "" || flag.NArg() == 0 {
		log.Fatal("usage: registry --listen ADDR --cert FILE --key FILE REPOSITORY:TAG=ARCHIVE...")
	}
	pulls := log.New(os.Stderr, "", log.LstdFlags)
	handler := registry.New(registry.Logger(pulls))

	// Filled through a loopback listener of its own: the one served answers reads only.
	fill := httptest.NewServer(handler)
	for _, arg := range flag.Args() {
		ref, archive, ok := strings.Cut(arg, "=")
		if !ok {
			log.Fatalf("%s: want REPOSITORY:TAG=ARCHIVE", arg)
		}
		if err := push(fill.Listener.Addr().String(), ref, archive); err != nil {
			log.Fatalf("%s: %v", archive, err)
		}
	}
	fill.Close()

	readOnly := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "this registry is read-only", http.StatusMethodNotAllowed)
			return
		}
		handler.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	log.Fatal(http.ServeTLS(ln, readOnly, *cert, *key))
}

// push writes the one image of an OCI layout archive to the registry at host as ref.
func push(host, ref, archive string) error {
	dir, err := os.MkdirTemp("", "registry-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untar(archive, dir); err != nil {
		return err
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return err
	}
	m, err := index.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("holds %d manifests, want one image", len(m.Manifests))
	}
	img, err := index.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(host+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(tag, img)
}

// untar extracts the regular files and directories of a tar archive below dir.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		path := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			out, err := os.Create(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
