package image

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"berth/mmapfs"
)

// umociConfigLayout is umociLayout's image with a config set by umoci
// config, and the Config berth should read from it.
func umociConfigLayout(t *testing.T) (string, Config) {
	layout, _ := umociLayout(t)
	run(t, "umoci", "config", "--image", layout+":t",
		"--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
		"--config.cmd", "echo hi from $GREETING",
		"--config.env", "GREETING=image", "--config.env", "PATH=/bin",
		"--config.workingdir", "/home/u", "--config.user", "root:root",
		"--config.stopsignal", "SIGQUIT")
	return layout, Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi from $GREETING"},
		Env: []string{"GREETING=image", "PATH=/bin"}, WorkingDir: "/home/u", User: "root:root", StopSignal: "SIGQUIT"}
}

// TestImageConfigKept checks that an OCI image's config, set by umoci,
// reaches Unpack and Prepare from the layout and from a docker save
// archive of it, is kept by Pack in the
// berth image, where the digest covers it, and that zstd and tar still
// read the packed image.
func TestImageConfigKept(t *testing.T) {
	layout, want := umociConfigLayout(t)
	dir := t.TempDir()
	st, err := Unpack(layout+":t", filepath.Join(dir, "from-layout"), UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Config, want) {
		t.Fatalf("unpacked from the layout: config %+v, want %+v", st.Config, want)
	}
	archive := dockerSave(t, layout, "t", filepath.Join(dir, "docker.tar"))
	if st, err = Unpack(archive, filepath.Join(dir, "from-docker"), UnpackOptions{}); err != nil || !reflect.DeepEqual(st.Config, want) {
		t.Fatalf("unpacked from a docker archive: config %+v, %v; want %+v", st.Config, err, want)
	}
	img := filepath.Join(dir, "app.tar.zst")
	if err := Pack(layout+":t", img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err = Unpack(img, filepath.Join(dir, "from-berth"), UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Config, want) {
		t.Fatalf("unpacked from the berth image: config %+v, want %+v", st.Config, want)
	}
	c, err := OpenCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{img, img} { // unpacked, then cached
		p, err := c.Prepare(src, PrepareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
		if !reflect.DeepEqual(p.Config, want) {
			t.Fatalf("prepared (cached %v): config %+v, want %+v", p.Cached, p.Config, want)
		}
	}
	// Repacking a berth image keeps the config too.
	again := filepath.Join(dir, "again.tar.zst")
	if err := Pack(img, again, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err = Unpack(again, filepath.Join(dir, "again"), UnpackOptions{}); err != nil || !reflect.DeepEqual(st.Config, want) {
		t.Fatalf("repacked: config %+v, %v; want %+v", st.Config, err, want)
	}
	out, err := exec.Command("tar", "--zstd", "-tf", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bin/busybox") {
		t.Fatalf("tar --zstd -tf: %v\n%s", err, out)
	}
	// The digest covers the config: the same tree with another Cmd is
	// another image.
	run(t, "umoci", "config", "--image", layout+":t", "--config.cmd", "echo other")
	other := filepath.Join(dir, "other.tar.zst")
	if err := Pack(layout+":t", other, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	d1, _ := Digest(img, "")
	d2, _ := Digest(other, "")
	if d1 == d2 {
		t.Fatalf("images differing only in their Cmd have the same digest %s", d1)
	}
}

// TestImageConfigHostile checks that configs beyond the limits, of the
// wrong types, or with values no process can take are refused with an
// error naming the field, from a layout and from a berth image's frame.
func TestImageConfigHostile(t *testing.T) {
	layers := [][]entry{{{name: "a", typ: regT, data: "a"}}}
	many := `"` + strings.Repeat(`x",  "`, maxConfigList) + `x"`
	cases := []struct{ name, config, err string }{
		{"Cmd a string", `{"Cmd":"/bin/sh -c x"}`, "Config.config.Cmd of type []string"},
		{"Env a number", `{"Env":[1]}`, "Config.config.Env of type string"},
		{"User an object", `{"User":{"name":"x"}}`, "Config.config.User of type string"},
		{"deeply nested", `{"Labels":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "JSON nested 20002 levels deep, at most 64"},
		{"too many args", `{"Cmd":[` + many + `]}`, "Cmd has 4097 entries, over the limit of 4096"},
		{"huge arg", `{"Entrypoint":["` + strings.Repeat("y", maxConfigString+1) + `"]}`, "Entrypoint[0]: 131073 bytes, over the limit"},
		{"too much in all", `{"Env":[` + strings.Repeat(`"K=`+strings.Repeat("v", 100<<10)+`",`, 11) + `"K=v"]}`, "over 1048576 bytes of values in all (at Env[10])"},
		{"NUL in an arg", `{"Cmd":["a\u0000b"]}`, "Cmd[0] holds a NUL byte"},
		{"Env without =", `{"Env":["PATH"]}`, `Env[0] "PATH": want K=V`},
		{"relative WorkingDir", `{"WorkingDir":"srv"}`, `WorkingDir "srv" is not an absolute path`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			writeLayout(t, layout, []testImage{{ref: "t", layers: layers, config: c.config}}, false)
			_, err := Unpack(layout, filepath.Join(t.TempDir(), "x"), UnpackOptions{Platform: "linux/amd64"})
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("unpack: error %v, want %q", err, c.err)
			}
			err = Pack(layout, filepath.Join(t.TempDir(), "x.tar.zst"), PackOptions{Platform: "linux/amd64"})
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("pack: error %v, want %q", err, c.err)
			}
		})
	}
}

// TestConfigFrameHostile checks the berth image's config frame: a frame
// that is corrupt, too large, doubled or of bad JSON is refused with an
// error naming it.
func TestConfigFrameHostile(t *testing.T) {
	good, err := appendConfigFrame(nil, Config{Cmd: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	badJSON := frameWith(t, []byte(`{"Cmd":"x"}`), true)
	cases := []struct {
		name  string
		extra []byte
		err   string
	}{
		{"flipped byte", flip(good, 20), "checksum mismatch"},
		{"two frames", append(append([]byte{}, good...), good...), "more than one config frame"},
		{"bad JSON", badJSON, "Config.Cmd of type []string"},
		{"too large", frameWith(t, bytes.Repeat([]byte(" "), maxConfigFrame), true), "a frame of 4194316 bytes (want 12 to 4194304)"},
		{"version 2", frameVersion(t, good, 2), "version 2 (this berth reads 1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := imageWithTrailer(t, c.extra)
			_, err := Unpack(img, filepath.Join(t.TempDir(), "x"), UnpackOptions{})
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
}

// frameWith builds a config frame around js; with sum, its checksum is
// right.
func frameWith(t *testing.T, js []byte, sum bool) []byte {
	t.Helper()
	f, err := appendConfigFrame(nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	body := append(append([]byte{}, f[8:16]...), js...)
	out := binary.LittleEndian.AppendUint32(nil, ConfigFrameMagic)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)+4))
	out = append(out, body...)
	c := crc32c(body)
	if !sum {
		c++
	}
	return binary.LittleEndian.AppendUint32(out, c)
}

// frameVersion is frame f with another version and a right checksum.
func frameVersion(t *testing.T, f []byte, v uint16) []byte {
	t.Helper()
	g := append([]byte{}, f...)
	binary.LittleEndian.PutUint16(g[12:], v)
	body := g[8 : len(g)-4]
	binary.LittleEndian.PutUint32(g[len(g)-4:], crc32c(body))
	return g
}

// flip is b with byte i changed.
func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0xff
	return c
}

// imageWithTrailer packs a one-file tree and puts extra (skippable
// frames) before its seek table.
func imageWithTrailer(t *testing.T, extra []byte) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Fixed times: two such images differ only in their trailers, so
	// that one can be written over the other (TestCacheHitConfig).
	fixed := time.Unix(1700000000, 0)
	for _, p := range []string{filepath.Join(src, "f"), src} {
		if err := os.Chtimes(p, fixed, fixed); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img.tar.zst")
	if err := Pack(src, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmapfs.Map(img)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mmapfs.ParseSeekTable(m, m.Size())
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := append(append(append([]byte{}, b[:st.TableStart]...), extra...), b[st.TableStart:]...)
	if err := os.WriteFile(img, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}
