package registry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/image"
)

// Tests against a real registry: Debian's docker-registry (the CNCF
// distribution registry 2.8), one per test, on a free port of 127.0.0.1
// with its own storage, killed when the test ends. Tests that need it, or
// skopeo, fail when it is missing (make test installs both).

// testRegistry is a running docker-registry.
type testRegistry struct {
	t       *testing.T
	host    string // 127.0.0.1:PORT
	config  string
	ca      string // the CA's PEM file, TLS only
	log     *syncBuffer
	cmd     *exec.Cmd
	regs    Registries // settings that reach it
	storage string
}

// registryOptions pick the registry's flavour.
type registryOptions struct {
	tls   bool
	basic bool // htpasswd user "berth", password "s3cret"
}

// syncBuffer is a bytes.Buffer safe for the registry's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// needTool fails the test when a tool is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing (make test installs it): %v", name, err)
	}
	return p
}

// freePort returns a port of 127.0.0.1 free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry starts a docker-registry for the test.
func startRegistry(t *testing.T, o registryOptions) *testRegistry {
	t.Helper()
	needTool(t, "docker-registry")
	dir := t.TempDir()
	r := &testRegistry{t: t, host: fmt.Sprintf("127.0.0.1:%d", freePort(t)), storage: filepath.Join(dir, "storage"), log: &syncBuffer{}}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", r.storage, r.host)
	s := Settings{Insecure: !o.tls}
	if o.tls {
		cert, key, ca := makeCerts(t, dir)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
		r.ca, s.CA = ca, ca
	}
	if o.basic {
		needTool(t, "htpasswd")
		htp := filepath.Join(dir, "htpasswd")
		if out, err := exec.Command("htpasswd", "-Bbc", htp, "berth", "s3cret").CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v: %s", err, out)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htp)
		pw := filepath.Join(dir, "password")
		os.WriteFile(pw, []byte("s3cret\n"), 0o600)
		s.Username, s.PasswordFile = "berth", pw
	}
	r.config = filepath.Join(dir, "config.yml")
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.regs = Registries{r.host: s}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start runs the registry and waits until it accepts connections.
func (r *testRegistry) start() {
	r.t.Helper()
	r.cmd = exec.Command("docker-registry", "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", r.host)
		if err == nil {
			c.Close()
			return
		}
		if i > 200 {
			r.t.Fatalf("docker-registry did not listen on %s: %s", r.host, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the registry.
func (r *testRegistry) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// makeCerts writes a CA and a certificate for 127.0.0.1 signed by it.
func makeCerts(t *testing.T, dir string) (cert, key, ca string) {
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
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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

// makeTree writes a small root filesystem and returns its directory.
func makeTree(t *testing.T, seed string) string {
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

// packImage packs tree into a berth image.
func packImage(t *testing.T, tree string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "img.tar.zst")
	if err := image.Pack(tree, out, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// treeSum describes a tree: every path with its type, mode, and content
// or link target, so two trees compare.
func treeSum(t *testing.T, root string) string {
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

// fileDigest is the sha256 digest of a file.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return digestOf(b)
}

// cacheEntries lists a cache's entries (sha256-HEX directories).
func cacheEntries(t *testing.T, root string) []string {
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
