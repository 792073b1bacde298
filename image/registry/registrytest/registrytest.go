// Package registrytest runs Debian's docker-registry (the CNCF
// distribution registry 2.8) for tests: one per test, on a free port of
// 127.0.0.1 with its own storage, killed when the test ends. A missing
// tool fails the test (make test installs it). Only tests import it.
package registrytest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/image"
	"berth/image/registry"
	"berth/internal/testutil"
)

// Registry is a running docker-registry.
type Registry struct {
	t       *testing.T
	Host    string // 127.0.0.1:PORT
	Config  string
	CA      string // the CA's PEM file, TLS only
	Log     *testutil.SyncBuffer
	cmd     *exec.Cmd
	Regs    registry.Registries // settings that reach it
	Storage string
}

// Options pick the registry's flavour.
type Options struct {
	TLS   bool
	Basic bool // htpasswd user "berth", password "s3cret"
}

// NeedTool fails the test when a tool is missing.
func NeedTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing (make test installs it): %v", name, err)
	}
	return p
}

// FreePort returns a port of 127.0.0.1 free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a docker-registry for the test.
func Start(t *testing.T, o Options) *Registry {
	t.Helper()
	NeedTool(t, "docker-registry")
	dir := t.TempDir()
	r := &Registry{t: t, Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), Storage: filepath.Join(dir, "storage"), Log: &testutil.SyncBuffer{}}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", r.Storage, r.Host)
	s := registry.Settings{Insecure: !o.TLS}
	if o.TLS {
		cert, key, ca := MakeCerts(t, dir)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
		r.CA, s.CA = ca, ca
	}
	if o.Basic {
		NeedTool(t, "htpasswd")
		htp := filepath.Join(dir, "htpasswd")
		if out, err := exec.Command("htpasswd", "-Bbc", htp, "berth", "s3cret").CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v: %s", err, out)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htp)
		pw := filepath.Join(dir, "password")
		os.WriteFile(pw, []byte("s3cret\n"), 0o600)
		s.Username, s.PasswordFile = "berth", pw
	}
	r.Config = filepath.Join(dir, "config.yml")
	if err := os.WriteFile(r.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Regs = registry.Registries{r.Host: s}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// start runs the registry and waits until it accepts connections.
func (r *Registry) Start() {
	r.t.Helper()
	r.cmd = exec.Command("docker-registry", "serve", r.Config)
	r.cmd.Stdout, r.cmd.Stderr = r.Log, r.Log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", r.Host)
		if err == nil {
			c.Close()
			return
		}
		if i > 200 {
			r.t.Fatalf("docker-registry did not listen on %s: %s", r.Host, r.Log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the registry.
func (r *Registry) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// MakeCerts writes a CA and a certificate signed by it for 127.0.0.1 and
// for 10.0.2.2, the name QEMU guests reach the host by.
func MakeCerts(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.2.2")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

// MakeTree writes a small root filesystem and returns its directory.
func MakeTree(t *testing.T, seed string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{
		"etc/hostname":     "berth-" + seed + "\n",
		"bin/app":          strings.Repeat("app "+seed, 50000),
		"usr/share/a.txt":  "a",
		"usr/share/empty":  "",
		"var/lib/data.bin": strings.Repeat("\x00\x01"+seed, 100000),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "bin/app"), 0o755)
	os.Symlink("../bin/app", filepath.Join(dir, "usr/app-link"))
	return dir
}

// PackImage packs tree into a berth image.
func PackImage(t *testing.T, tree string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "img.tar.zst")
	if err := image.Pack(tree, out, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TreeSum describes a tree: every path with its type, mode, and content
// or link target, so two trees compare.
func TreeSum(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// FileDigest is the sha256 digest of a file.
func FileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CacheEntries lists a cache's entries (sha256-HEX directories).
func CacheEntries(t *testing.T, root string) []string {
	t.Helper()
	ents, _ := os.ReadDir(root)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "sha256-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Entry is a file, directory, symlink or whiteout of a test layer.
type Entry struct {
	Name, Data, Link string
	Dir              bool
	Mode             int64 // permission bits; 0: 0644, or 0755 for a directory
}

// WriteDockerDir writes an image in skopeo's dir: format, as docker
// builds them: a docker schema 2 manifest, a config and gzip layers.
func WriteDockerDir(t *testing.T, layers [][]Entry) string {
	t.Helper()
	dir := t.TempDir()
	var diffIDs []string
	var descs []map[string]any
	for _, entries := range layers {
		var raw, gz bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, e := range entries {
			h := &tar.Header{Name: e.Name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.Data)), ModTime: time.Unix(1700000000, 0)}
			switch {
			case e.Dir:
				h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
			case e.Link != "":
				h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
			}
			if e.Mode != 0 {
				h.Mode = e.Mode
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(e.Data))
		}
		tw.Close()
		zw := gzip.NewWriter(&gz)
		zw.Write(raw.Bytes())
		zw.Close()
		diffIDs = append(diffIDs, sum(raw.Bytes()))
		d := sum(gz.Bytes())
		os.WriteFile(filepath.Join(dir, strings.TrimPrefix(d, "sha256:")), gz.Bytes(), 0o644)
		descs = append(descs, map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": gz.Len()})
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Cmd": []string{"/bin/sh"}}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd := sum(cfg)
	os.WriteFile(filepath.Join(dir, strings.TrimPrefix(cd, "sha256:")), cfg, 0o644)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": len(cfg)},
		"layers": descs})
	os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644)
	os.WriteFile(filepath.Join(dir, "version"), []byte("Directory Transport Version: 1.1\n"), 0o644)
	return dir
}

// sum is the sha256 digest of b.
func sum(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Skopeo copies src (a skopeo transport reference) to the registry.
func (r *Registry) Skopeo(src, dest string) {
	r.t.Helper()
	NeedTool(r.t, "skopeo")
	args := []string{"copy", "--quiet", "--dest-tls-verify=false", src, dest}
	if out, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
		r.t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
}

// Proxy is a TCP proxy in front of a registry that records each
// request's head and can cut a response short.
type Proxy struct {
	Host  string // 127.0.0.1:PORT
	mu    sync.Mutex
	heads []string
	// Cut, when it returns n ≥ 0 for a request head, passes only n bytes
	// of the response, then closes both sides and sends the head on Cuts.
	Cut  func(head string) int64
	Cuts chan string
	// Rewrite, when set, changes a request head before it is sent on.
	Rewrite func(head string) string
}

// StartProxy proxies to target until the test ends.
func StartProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: l.Addr().String(), Cuts: make(chan string, 16)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

// Heads returns the request heads seen so far.
func (p *Proxy) Heads() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.heads...)
}

func (p *Proxy) serve(c net.Conn, target string) {
	defer c.Close()
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	p.mu.Lock()
	p.heads = append(p.heads, head.String())
	cut := int64(-1)
	if p.Cut != nil {
		cut = p.Cut(head.String())
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	h := head.String()
	if p.Rewrite != nil {
		h = p.Rewrite(h)
	}
	up.Write([]byte(h))
	go io.Copy(up, br)
	if cut < 0 {
		io.Copy(c, up)
		return
	}
	io.CopyN(c, up, cut)
	p.Cuts <- head.String()
}
