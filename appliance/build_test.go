package appliance_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"berth/appliance"
)

// repoRoot is the top of the berth checkout.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// testBerth is an ELF program for this machine's architecture, standing
// in for berth: the test binary itself.
func testBerth(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeModules writes a modules directory with depmod's output whose
// modules are copies of Debian amd64 modules under other names, so that
// what the initramfs holds can only come from modules.dep,
// modules.softdep and modules.alias: alpha needs beta, takes gamma
// before it, and delta provides the alias fake:thing*.
func fakeModules(t *testing.T) string {
	t.Helper()
	pkg := filepath.Join(repoRoot(), ".cache", "deb", "amd64", "linux-image", "lib", "modules")
	rels, err := os.ReadDir(pkg)
	if err != nil || len(rels) != 1 {
		t.Fatalf("want one kernel under %s (make fetch-amd64): %v", pkg, err)
	}
	src := filepath.Join(pkg, rels[0].Name())
	dir := filepath.Join(t.TempDir(), rels[0].Name())
	for name, from := range map[string]string{
		"kernel/a/alpha.ko": "kernel/drivers/watchdog/i6300esb.ko",
		"kernel/b/beta.ko":  "kernel/fs/overlayfs/overlay.ko",
		"kernel/c/gamma.ko": "kernel/net/llc/llc.ko",
		"kernel/d/delta.ko": "kernel/net/802/stp.ko",
		"kernel/e/other.ko": "kernel/drivers/watchdog/watchdog.ko",
	} {
		data, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name), string(data))
	}
	write(t, filepath.Join(dir, "modules.dep"), "kernel/a/alpha.ko: kernel/b/beta.ko\nkernel/b/beta.ko:\nkernel/c/gamma.ko:\nkernel/d/delta.ko:\nkernel/e/other.ko:\n")
	write(t, filepath.Join(dir, "modules.softdep"), "softdep alpha pre: gamma\n")
	write(t, filepath.Join(dir, "modules.alias"), "alias fake:thing* delta\n")
	write(t, filepath.Join(dir, "modules.builtin"), "kernel/fs/ext4/ext4.ko\n")
	return dir
}

// testConfig names an image file, an OCI layout directory, a public key
// (so each image's IMAGE.sig), an image given by --file and one on the
// data partition, and two modules.
const testConfig = `
[storage]
device = "LABEL=data"

[board]
modules = ["alpha", "fake:thing-1"]

[images]
public_key = "keys/vendor.pub"

[[container]]
name = "web"
image = "images/web.tar.zst"
command = ["httpd"]

[[container]]
name = "oci"
image = "images/layout/"
command = ["true"]

[[container]]
name = "given"
image = "/images/given.tar"
command = ["true"]

[[container]]
name = "later"
image = "/data/images/later.tar.zst"
command = ["true"]
`

// appDir writes the test appliance's directory: its config and the files
// the config names.
func appDir(t *testing.T) (config string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	config = filepath.Join(dir, "berth.toml")
	write(t, config, testConfig)
	for name, content := range map[string]string{
		"images/web.tar.zst":             "web image",
		"images/web.tar.zst.sig":         "web signature",
		"images/layout/oci-layout":       `{"imageLayoutVersion":"1.0.0"}`,
		"images/layout/index.json":       "{}",
		"images/layout/blobs/sha256/abc": "blob",
		"images/layout.sig":              "layout signature",
		"keys/vendor.pub":                "key",
	} {
		write(t, filepath.Join(dir, name), content)
	}
	given := filepath.Join(t.TempDir(), "given.tar")
	write(t, given, "given image")
	write(t, given+".sig", "given signature")
	return config, map[string]string{"/images/given.tar": given}
}

// record is what a test reads of one cpio record.
type record struct {
	info cpio.Info
	data string
}

// readInitramfs decompresses and reads an initramfs written by Write.
func readInitramfs(t *testing.T, path string) map[string]record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s is not zstd: %v", path, err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]record{}
	for _, r := range recs {
		var data []byte
		if r.ReaderAt != nil {
			data, _ = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		}
		if _, dup := out[r.Name]; dup {
			t.Errorf("%s twice in the archive", r.Name)
		}
		out[r.Name] = record{r.Info, string(data)}
	}
	return out
}

// TestInitramfsContents builds the test appliance and reads the archive
// back as the kernel would: berth as /init, the config as
// /etc/berth.toml, the config's files where berth looks for them, the
// file given by --file, nothing of the data partition, and the modules
// with their dependencies and index from the modules directory.
func TestInitramfsContents(t *testing.T) {
	config, files := appDir(t)
	spec := appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t), ModulesDir: fakeModules(t), Files: files}
	b, err := appliance.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "initramfs.cpio.zst")
	if err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	recs := readInitramfs(t, out)
	berth, _ := os.ReadFile(spec.Berth)
	cfg, _ := os.ReadFile(config)
	rel := "lib/modules/" + filepath.Base(spec.ModulesDir) + "/"
	want := map[string]string{
		"init":                               "",
		"etc/berth.toml":                     string(cfg),
		"etc/images/web.tar.zst":             "web image",
		"etc/images/web.tar.zst.sig":         "web signature",
		"etc/images/layout/oci-layout":       `{"imageLayoutVersion":"1.0.0"}`,
		"etc/images/layout/blobs/sha256/abc": "blob",
		"etc/images/layout.sig":              "layout signature",
		"etc/keys/vendor.pub":                "key",
		"images/given.tar":                   "given image",
		"images/given.tar.sig":               "given signature",
		rel + "kernel/a/alpha.ko":            "",
		rel + "kernel/b/beta.ko":             "",
		rel + "kernel/c/gamma.ko":            "",
		rel + "kernel/d/delta.ko":            "",
		rel + "modules.dep":                  "kernel/a/alpha.ko: kernel/b/beta.ko\nkernel/b/beta.ko:\nkernel/c/gamma.ko:\nkernel/d/delta.ko:\n",
		rel + "modules.softdep":              "softdep alpha pre: gamma\n",
		rel + "modules.alias":                "alias fake:thing* delta\n",
		rel + "modules.builtin":              "kernel/fs/ext4/ext4.ko\n",
	}
	for name, content := range want {
		r, ok := recs[name]
		switch {
		case !ok:
			t.Errorf("no %s in the initramfs", name)
		case content != "" && r.data != content:
			t.Errorf("%s holds %q, want %q", name, r.data, content)
		}
	}
	if r := recs["init"]; r.data != string(berth) || r.info.Mode != cpio.S_IFREG|0o755 {
		t.Errorf("/init: mode %o, %d bytes; want berth, mode 0755", r.info.Mode, len(r.data))
	}
	if r := recs["dev/console"]; r.info.Mode != cpio.S_IFCHR|0o600 || r.info.Rmajor != 5 || r.info.Rminor != 1 {
		t.Errorf("/dev/console: %+v", r.info)
	}
	for _, d := range []string{"proc", "sys", "dev", "etc", "run", "tmp", "var", "etc/images/layout/blobs"} {
		if r := recs[d]; r.info.Mode != cpio.S_IFDIR|0o755 {
			t.Errorf("%s: mode %o, want a directory 0755", d, r.info.Mode)
		}
	}
	for name, r := range recs {
		if strings.HasPrefix(name, "data") || strings.Contains(name, "other.ko") {
			t.Errorf("%s is in the initramfs", name)
		}
		if r.info.UID != 0 || r.info.GID != 0 || r.info.MTime != 0 {
			t.Errorf("%s: owner %d:%d, mtime %d; want 0:0, 0", name, r.info.UID, r.info.GID, r.info.MTime)
		}
	}
	if !slices.ContainsFunc(b.Notes, func(n string) bool { return strings.Contains(n, "/data/images/later.tar.zst is on the data partition") }) {
		t.Errorf("notes %q lack the image on the data partition", b.Notes)
	}
	if got := b.Modules.Modules(); !slices.Equal(got, []string{"alpha", "beta", "delta", "gamma"}) {
		t.Errorf("modules %v", got)
	}
}
