package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// umociLayout builds an OCI layout with umoci (which berth did not write):
// a busybox rootfs and two more layers of changes, deletions included. It
// returns the layout and the bundle's final rootfs, the expected tree.
func umociLayout(t *testing.T) (layout, rootfs string) {
	t.Helper()
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Fatal("umoci is not installed: make host-deps installs it")
	}
	if !isRoot {
		t.Skip("umoci layouts are built as root")
	}
	busybox, err := filepath.Abs(filepath.Join("..", ".cache", "deb", runtime.GOARCH, "busybox-static", "bin", "busybox"))
	if err != nil || !exists(busybox) {
		t.Fatal("no static busybox in .cache/deb: make fetch")
	}
	dir := t.TempDir()
	layout, bundle := filepath.Join(dir, "layout"), filepath.Join(dir, "bundle")
	rootfs = filepath.Join(bundle, "rootfs")
	run(t, "umoci", "init", "--layout", layout)
	run(t, "umoci", "new", "--image", layout+":t")
	run(t, "umoci", "unpack", "--image", layout+":t", bundle)
	sh := func(script string) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-ec", script)
		cmd.Dir = rootfs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		wholeSeconds(t, rootfs) // tar headers round mtimes to seconds
	}
	sh(`mkdir -p bin etc/old usr/bin home/u var/empty
		cp ` + busybox + ` bin/busybox
		for a in sh ls cat echo; do ln -s busybox bin/$a; done
		echo root:x:0:0::/root:/bin/sh > etc/passwd
		echo hello > etc/motd; echo a > etc/old/a; echo b > etc/old/b
		echo linked > usr/bin/x; ln usr/bin/x usr/bin/y
		chown 1000:1000 home/u; chmod 0750 home/u
		echo su > bin/su; chmod 4755 bin/su
		mkfifo var/fifo`)
	run(t, "umoci", "repack", "--refresh-bundle", "--image", layout+":t", bundle)
	sh(`rm bin/ls; rm -r etc/old; echo changed > etc/motd; chmod 0600 etc/passwd
		mkdir opt; echo x > opt/x; rm usr/bin/x`)
	run(t, "umoci", "repack", "--refresh-bundle", "--image", layout+":t", bundle)
	sh(`rm -r opt; echo now-a-file > opt; rm etc/motd; mkdir etc/motd; echo inner > etc/motd/inner
		echo new > usr/bin/y2; ln -s ../../etc/passwd usr/bin/pw`)
	run(t, "umoci", "repack", "--refresh-bundle", "--image", layout+":t", bundle)
	return layout, rootfs
}

// wholeSeconds truncates every mtime under root to whole seconds, deepest
// first so directory times stick.
func wholeSeconds(t *testing.T, root string) {
	t.Helper()
	var paths []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	})
	for i := len(paths) - 1; i >= 0; i-- {
		var st unix.Stat_t
		if err := unix.Lstat(paths[i], &st); err != nil {
			t.Fatal(err)
		}
		ts := []unix.Timespec{{Sec: st.Atim.Sec}, {Sec: st.Mtim.Sec}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestUmociLayout reads umoci's layout in every form berth takes it — the
// directory, a tar of it, a docker save archive made from its blobs — and
// through a berth image packed from it: each must give the bundle's tree.
func TestUmociLayout(t *testing.T) {
	layout, rootfs := umociLayout(t)
	want := snapshot(t, rootfs)
	dir := t.TempDir()
	layoutTar := filepath.Join(dir, "layout.tar")
	run(t, "tar", "-C", layout, "-cf", layoutTar, ".")
	docker := dockerSave(t, layout, "t", filepath.Join(dir, "docker.tar"))
	img := filepath.Join(dir, "img.tar.zst")
	if err := Pack(layout+":t", img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	sources := []struct{ name, src, format string }{
		{"layout", layout + ":t", FormatOCI},
		{"layout tar", layoutTar + ":t", FormatOCI},
		{"docker save", docker, FormatDocker},
		{"docker save by tag", docker + ":busybox:t", FormatDocker},
		{"berth image packed from the layout", img, FormatBerth},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			st, err := Unpack(s.src, dest, UnpackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Format != s.format {
				t.Errorf("format %q, want %q", st.Format, s.format)
			}
			compareTrees(t, want, snapshot(t, dest))
		})
	}
	t.Run("tar --zstd -xf of the packed image", func(t *testing.T) {
		dest := t.TempDir()
		run(t, "tar", "--zstd", "-xf", img, "-C", dest)
		compareTrees(t, want, snapshot(t, dest))
	})
	t.Run("digest is the manifest's", func(t *testing.T) {
		var index ociIndex
		b, _ := os.ReadFile(filepath.Join(layout, "index.json"))
		json.Unmarshal(b, &index)
		d, err := Digest(layout+":t", "")
		if err != nil || d != index.Manifests[0].Digest {
			t.Errorf("digest %s (%v), index.json says %s", d, err, index.Manifests[0].Digest)
		}
	})
}

// dockerSave writes a docker save archive (manifest.json, config, one
// layer.tar per layer, uncompressed, as docker save wrote them before OCI)
// from the blobs of image ref in layout.
func dockerSave(t *testing.T, layout, ref, out string) string {
	t.Helper()
	in, err := openInput(layout+":"+ref, "", Limits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	var m ociManifest
	mb, _ := readBlob(in.store, descriptor{Digest: in.digest, Size: blobSize(t, layout, in.digest)})
	json.Unmarshal(mb, &m)
	cfg, err := readBlob(in.store, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	cfgName := m.Config.Digest[7:] + ".json"
	add(cfgName, cfg)
	var layers []string
	for i, l := range m.Layers {
		gz, _ := os.ReadFile(filepath.Join(layout, "blobs", "sha256", l.Digest[7:]))
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		name := filepath.Join(string(rune('a'+i))+"layer", "layer.tar")
		add(name, raw)
		layers = append(layers, name)
	}
	manifest, _ := json.Marshal([]dockerManifest{{Config: cfgName, RepoTags: []string{"busybox:" + ref}, Layers: layers}})
	add("manifest.json", manifest)
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func blobSize(t *testing.T, layout, digest string) int64 {
	st, err := os.Stat(filepath.Join(layout, "blobs", "sha256", digest[7:]))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
